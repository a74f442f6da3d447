"""Every report as CSV and XLSX under one convention; bad input is a problem naming the field."""

from __future__ import annotations

import csv
import io
from typing import Any

import openpyxl
import pytest
import pytest_asyncio
from bali_common.events.alerts import AlertStatus
from reporting_testkit import (
    Reporting,
    activity,
    activity_event,
    alert,
    alert_event,
    delivery_event,
    member_event,
    output,
    publish,
)

REPORTS = (
    "coverage",
    "trends",
    "indicators",
    "alerts",
    "response-times",
    "deliveries",
    "pipeline",
    "follow-up",
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def loaded(service: Reporting) -> Reporting:
    events = [
        member_event("TH", name="=cmd|' /C calc'!A0"),
        activity_event(
            activity(
                "a1",
                items=[12],
                related_alert_id="al-1",
                outputs=[output("@people reached", 12, ages=[("18-24", 5)])],
            )
        ),
        alert_event(alert("al-1", title="-2+3 boats;=1+1")),
        alert_event(
            alert("al-1", version=2, status=AlertStatus.acknowledged, title="-2+3 boats;=1+1")
        ),
        delivery_event("d1", "exhausted", alert_id="al-1", warning=True, error="=1+1"),
    ]
    await publish(service.settings, events)
    await service.caught_up(len(events))
    return service


def csv_rows(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


def xlsx_rows(content: bytes) -> list[tuple[Any, ...]]:
    sheet = openpyxl.load_workbook(io.BytesIO(content)).active
    assert sheet is not None
    return list(sheet.iter_rows(values_only=True))


def risky(cells: list[Any]) -> list[str]:
    """Text cells, or ';'-separated parts of them, that a spreadsheet would run."""
    return [
        part
        for cell in cells
        if isinstance(cell, str)
        for part in cell.split(";")
        if part.lstrip(" ").startswith(FORMULA_STARTS)
    ]


@pytest.mark.parametrize("name", REPORTS)
async def test_each_report_downloads_as_csv_and_xlsx_with_the_same_rows(
    loaded: Reporting, name: str
) -> None:
    admin = loaded.tokens.admin()
    as_csv = await loaded.get(f"/v1/reports/{name}/export", headers=admin)
    as_xlsx = await loaded.get(f"/v1/reports/{name}/export", headers=admin, format="xlsx")
    assert as_csv.status_code == as_xlsx.status_code == 200, (as_csv.text, as_xlsx.text)
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_xlsx.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert "attachment" in as_csv.headers["content-disposition"]
    from_csv, from_xlsx = csv_rows(as_csv.content), xlsx_rows(as_xlsx.content)
    assert from_csv[0] == list(from_xlsx[0]), "one header row, the same in both"
    assert len(from_csv) == len(from_xlsx) > 1
    for row in from_csv:
        assert risky(row) == [], row
    for values in from_xlsx:
        assert risky(list(values)) == [], values


async def test_exported_cells_are_the_reports_values(loaded: Reporting) -> None:
    admin = loaded.tokens.admin()
    alerts = csv_rows((await loaded.get("/v1/reports/alerts/export", headers=admin)).content)
    header, row = alerts[0], alerts[1]
    assert row[header.index("title")] == "'-2+3 boats;'=1+1"
    assert row[header.index("status")] == "acknowledged"
    assert row[header.index("raised_at")] == "2025-11-28T03:00:00Z"
    sheet = xlsx_rows(
        (await loaded.get("/v1/reports/alerts/export", headers=admin, format="xlsx")).content
    )
    assert sheet[1][sheet[0].index("raised_at")].isoformat() == "2025-11-28T03:00:00"
    coverage = csv_rows(
        (await loaded.get("/v1/reports/coverage/export", headers=admin, year=2025)).content
    )
    names = {row[coverage[0].index("member_name")] for row in coverage[1:]}
    assert "'=cmd|' /C calc'!A0" in names
    indicators = csv_rows(
        (await loaded.get("/v1/reports/indicators/export", headers=admin)).content
    )
    assert indicators[1][indicators[0].index("by_age")] == "18-24:5"
    assert indicators[1][indicators[0].index("indicator")] == "'@people reached"


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("coverage", {"year": "1999"}, "query.year"),
        ("coverage", {"year": "2025.0"}, "query.year"),
        ("coverage", {"year": "99999999999999999999999"}, "query.year"),
        ("coverage", {"year": " 2025"}, "query.year"),
        ("coverage", {"item": "1e1"}, "query.item"),
        ("coverage", {"item": "26"}, "query.item"),
        ("coverage", {"area": "0"}, "query.area"),
        ("coverage", {"member": "A B"}, "query.member"),
        ("coverage", {"status": "done"}, "query.status"),
        ("trends", {"date_from": "2025-02-30"}, "query.date_from"),
        ("trends", {"date_from": "1700000000"}, "query.date_from"),
        ("trends", {"date_from": "2025-1-1"}, "query.date_from"),
        (
            "trends",
            {"date_to": "\u0662\u0660\u0662\u0665-01-01"},
            "query.date_to",
        ),  # Arabic-Indic digits
        ("trends", {"date_from": "1900-01-01"}, "query.date_from"),
        ("trends", {"date_from": "2025-03-01", "date_to": "2025-02-01"}, "query.date_to"),
        ("indicators", {"indicator": "   "}, "query.indicator"),
        ("indicators", {"page_size": "0"}, "query.page_size"),
        ("indicators", {"page_size": "201"}, "query.page_size"),
        ("indicators", {"cursor": "not-a-cursor!"}, "query.cursor"),
        ("indicators", {"cursor": "WyJ4Il0"}, "query.cursor"),
        ("alerts", {"severity": "extreme"}, "query.severity"),
        ("alerts", {"open": "maybe"}, "query.open"),
        ("alerts", {"cursor": "WyIyMDI1LTEzLTAxVDAwOjAwOjAwIiwgIngiXQ"}, "query.cursor"),
        ("deliveries", {"channel": "pigeon"}, "query.channel"),
        ("follow-up", {"item": "-1"}, "query.item"),
        ("coverage/export", {"format": "pdf"}, "query.format"),
    ],
)
async def test_bad_input_is_a_problem_naming_the_field(
    loaded: Reporting, path: str, params: dict[str, str], field: str
) -> None:
    response = await loaded.get(f"/v1/reports/{path}", headers=loaded.tokens.admin(), **params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [error["field"] for error in response.json()["errors"]]


async def test_an_export_past_its_limit_is_refused(loaded: Reporting) -> None:
    from reporting_testkit import started

    capped = loaded.settings.model_copy(update={"export_max_rows": 1})
    async with started(capped) as small:
        await small.caught_up(5)
        refused = await small.get("/v1/reports/indicators/export", headers=small.tokens.admin())
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["field"] == "query"


async def test_the_openapi_document_describes_reports_and_exports(loaded: Reporting) -> None:
    document = (await loaded.client.get("/openapi.json")).json()
    for name in REPORTS:
        report = document["paths"][f"/v1/reports/{name}"]["get"]
        assert report["summary"]
        assert {"401", "403", "422"} <= set(report["responses"])
        schema = report["responses"]["200"]["content"]["application/json"]["schema"]
        component = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        assert component.get("examples"), f"{name} has no example"
        export = document["paths"][f"/v1/reports/{name}/export"]["get"]
        content = export["responses"]["200"]["content"]
        assert content["text/csv"]["example"].endswith("\r\n")
        assert "format" in [p["name"] for p in export["parameters"]]
