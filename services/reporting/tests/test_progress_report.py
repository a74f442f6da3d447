"""The ministerial progress report: the HTML names every area and item, the PDF opens and
names every area, the format is chosen like the other downloads, a bad year is a 422."""

from __future__ import annotations

import html
import io
import re

from bali_common.auth import Role
from dashboard_support import PUBLIC_TITLE, RESTRICTED_TITLE, STRATEGY, UNCOVERED
from pypdf import PdfReader
from reporting_testkit import Reporting


def words(text: str) -> str:
    """Text with every run of whitespace as one space (PDF lines break anywhere)."""
    return " ".join(text.split())


async def test_the_html_report_names_every_area_and_item(year_loaded: Reporting) -> None:
    response = await year_loaded.get("/v1/reports/progress/2025")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    text = words(html.unescape(response.text))
    assert "progress report 2025" in text
    for area in STRATEGY.areas:
        assert f"Area {area.number}: {area.name}" in text
    for item in STRATEGY.items:
        assert words(item.text) in text
    assert "@media print" in response.text
    assert "officers trained" in text
    assert PUBLIC_TITLE in text
    # The uncovered items are listed in their own section.
    uncovered = text.split("Items not covered", 1)[1].split("Indicator totals", 1)[0]
    for number in UNCOVERED:
        assert words(STRATEGY.item(number).text) in uncovered


async def test_the_pdf_opens_and_names_every_area(year_loaded: Reporting) -> None:
    for kwargs in ({"format": "pdf"}, {}):
        headers = {**year_loaded.tokens.ops(), **({} if kwargs else {"Accept": "application/pdf"})}
        response = await year_loaded.client.get(
            "/v1/reports/progress/2025", params=kwargs, headers=headers
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/pdf"
        reader = PdfReader(io.BytesIO(response.content))
        assert reader.metadata is not None
        assert reader.metadata.title == "Bali Process progress report 2025"
        text = words(" ".join(page.extract_text() for page in reader.pages))
        for area in STRATEGY.areas:
            assert words(f"Area {area.number}: {area.name}") in text, area.name
        assert "Items not covered" in text
        assert "Indicator totals" in text
        assert "Consultation Mechanism alerts handled" in text


async def test_alerts_in_the_report_follow_the_visibility_rule(year_loaded: Reporting) -> None:
    outsider = await year_loaded.get(
        "/v1/reports/progress/2025", headers=year_loaded.tokens("PH", (Role.member,))
    )
    named = await year_loaded.get(
        "/v1/reports/progress/2025", headers=year_loaded.tokens("MY", (Role.member,))
    )
    assert RESTRICTED_TITLE not in outsider.text
    assert RESTRICTED_TITLE in named.text
    assert re.search(r"Severe</td>\s*<td class=\"num\">1</td>\s*<td>12 min / 12 min", named.text)


async def test_a_year_out_of_range_is_a_problem_naming_the_field(year_loaded: Reporting) -> None:
    for year in ("1999", "2101", "2025.0", "twenty", "99999999999"):
        response = await year_loaded.get(f"/v1/reports/progress/{year}")
        assert response.status_code == 422, year
        assert response.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in response.json()["errors"]] == ["path.year"], year
    bad_format = await year_loaded.get("/v1/reports/progress/2025", format="docx")
    assert bad_format.status_code == 422
    assert [e["field"] for e in bad_format.json()["errors"]] == ["query.format"]


async def test_the_report_needs_a_reader(year_loaded: Reporting) -> None:
    response = await year_loaded.client.get("/v1/reports/progress/2025")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_the_report_is_documented_with_both_media_types(year_loaded: Reporting) -> None:
    spec = (await year_loaded.client.get("/openapi.json")).json()
    operation = spec["paths"]["/v1/reports/progress/{year}"]["get"]
    content = operation["responses"]["200"]["content"]
    assert set(content) == {"text/html", "application/pdf"}
    assert "example" in content["text/html"]
    year = next(p for p in operation["parameters"] if p["name"] == "year")
    assert year["schema"]["minimum"] == 2000
    assert year["schema"]["maximum"] == 2100
    assert "422" in operation["responses"]
    assert not any(path == "/" or path.startswith("/sign-in") for path in spec["paths"])
