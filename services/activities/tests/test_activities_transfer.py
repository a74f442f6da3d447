"""Bulk import from CSV and XLSX (dry run, all or nothing) and export of filtered lists."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any
from uuid import uuid4

import openpyxl
from activities_testkit import FUTURE, PAST, Service, started
from bali_activities.activities.tabular import COLUMNS
from bali_common.events import Stream
from bali_common.messaging.outbox import OutboxMessage
from sqlalchemy import func
from sqlmodel import select

PROBLEM = "application/problem+json"


def csv_file(rows: list[dict[str, Any]], columns: list[str] | None = None) -> bytes:
    names = columns or list(rows[0])
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=names)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def xlsx_file(rows: list[dict[str, Any]]) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(list(rows[0]))
    for row in rows:
        sheet.append(list(row.values()))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def new_row(title: str, **overrides: Any) -> dict[str, Any]:
    row = {
        "title": title,
        "items": "9;10",
        "type": "public_information_campaign",
        "status": "completed",
        "participants": "IOM:participant;AU:funder",
        "planned_start": PAST.isoformat(),
        "planned_end": (PAST + timedelta(days=10)).isoformat(),
        "actual_start": PAST.isoformat(),
        "actual_end": (PAST + timedelta(days=10)).isoformat(),
        "countries": "PH;MY",
        "tags": "digital literacy;safe migration",
        "outputs": json.dumps([{"indicator": "people reached", "value": 1200}]),
    }
    row.update(overrides)
    return row


async def upload(
    service: Service,
    content: bytes,
    *,
    name: str = "activities.csv",
    dry_run: bool = False,
    member: str = "PH",
    headers: dict[str, str] | None = None,
) -> Any:
    return await service.client.post(
        "/v1/activities/import",
        params={"dry_run": str(dry_run).lower()},
        files={"file": (name, content)},
        headers=headers or service.tokens(member),
    )


async def outbox_size(service: Service) -> int:
    async with service.sessions() as session:
        return int((await session.exec(select(func.count()).select_from(OutboxMessage))).one())


async def titles_of(service: Service, marker: str) -> list[str]:
    response = await service.client.get(
        "/v1/activities", params={"q": marker, "page_size": 200}, headers=service.tokens.admin()
    )
    return sorted(a["title"] for a in response.json()["items"])


async def test_a_csv_import_creates_activities_led_by_the_caller(service: Service) -> None:
    marker = f"csv-import-{uuid4().hex[:6]}"
    content = csv_file([new_row(f"{marker} one"), new_row(f"{marker} two", items="20")])
    response = await upload(service, content)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["dry_run"] is False
    assert report["applied"] is True
    assert (report["created"], report["updated"], report["failed"]) == (2, 0, 0)
    assert [r["row"] for r in report["results"]] == [2, 3]
    first = await service.get(report["results"][0]["activity_id"])
    assert first.json()["lead_member"] == "PH"
    assert first.json()["areas"] == [3]
    assert first.json()["participants"][1:] == [
        {"member_id": "IOM", "role": "participant"},
        {"member_id": "AU", "role": "funder"},
    ]
    assert first.json()["outputs"] == [
        {"indicator": "people reached", "value": 1200, "unit": None, "by_sex": None, "by_age": []}
    ]
    assert await titles_of(service, marker) == [f"{marker} one", f"{marker} two"]
    for result in report["results"]:
        events = await service.events(Stream.activities, subject=result["activity_id"], expected=1)
        assert [e.type for e in events] == ["activity.created"]


async def test_a_dry_run_reports_every_row_and_changes_nothing(service: Service) -> None:
    marker = f"dry-run-{uuid4().hex[:6]}"
    mine = await service.create("PH", title=f"{marker} existing", status="ongoing", actual_end=None)
    others = await service.create("TH", title=f"{marker} of Thailand", participants=[])
    columns = ["id", "version", *new_row("x")]
    rows = [
        {"id": "", "version": "", **new_row(f"{marker} new")},
        {"id": mine["id"], "version": "1", **new_row(f"{marker} existing", status="completed")},
        {"id": "", "version": "", **new_row(f"{marker} bad item", items="3;26")},
        {
            "id": "",
            "version": "",
            **new_row(
                f"{marker} bad dates",
                planned_end=(PAST - timedelta(days=1)).isoformat(),
                actual_end=FUTURE.isoformat(),
            ),
        },
        {"id": others["id"], "version": "1", **new_row(f"{marker} hijack")},
        {"id": str(uuid4()), "version": "", **new_row(f"{marker} ghost")},
        {"id": "", "version": "", **new_row(f"{marker} stranger", participants="ZZ")},
        {"id": "", "version": "", **new_row(f"{marker} broken json", outputs="[{")},
    ]
    before_outbox = await outbox_size(service)
    before_titles = await titles_of(service, marker)

    response = await upload(service, csv_file(rows, columns), dry_run=True)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["dry_run"] is True
    assert report["applied"] is False
    assert (report["created"], report["updated"], report["failed"]) == (1, 1, 6)
    by_row = {r["row"]: r for r in report["results"]}
    assert by_row[2]["action"] == "create"
    assert by_row[2]["activity_id"] is None
    assert by_row[3]["action"] == "update"
    assert by_row[3]["activity_id"] == mine["id"]
    assert "status" in by_row[3]["changed_fields"]
    errors = {r["row"]: [e["field"] for e in r["errors"]] for r in report["results"]}
    assert errors[4] == ["rows.4.items.1"]
    assert set(errors[5]) == {"rows.5.planned_end", "rows.5.actual_end"}
    assert errors[6] == ["rows.6.id"]
    assert errors[7] == ["rows.7.id"]
    assert errors[8] == ["rows.8.participants.0.member_id"]
    assert errors[9] == ["rows.9.outputs"]

    assert await outbox_size(service) == before_outbox
    assert await titles_of(service, marker) == before_titles
    assert (await service.get(mine["id"])).json()["version"] == 1

    refused = await upload(service, csv_file(rows, columns))
    assert refused.status_code == 422
    assert refused.headers["content-type"] == PROBLEM
    assert "rows.4.items.1" in [e["field"] for e in refused.json()["errors"]]
    assert await outbox_size(service) == before_outbox
    assert await titles_of(service, marker) == before_titles


async def test_an_export_edited_and_imported_again_updates_in_place(service: Service) -> None:
    marker = f"round-trip-{uuid4().hex[:6]}"
    first = await service.create(
        "PH", title=f'=HYPERLINK("http://evil.example") {marker}', tags=[marker]
    )
    second = await service.create("PH", title=f"{marker} second", tags=[marker], status="ongoing")
    exported = await service.client.get(
        "/v1/activities/export", params={"tag": marker}, headers=service.tokens("PH")
    )
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    text = exported.content.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(COLUMNS)
    assert [r["id"] for r in rows] == [second["id"], first["id"]]
    assert rows[1]["title"].startswith("'="), "formulas are neutralised"
    assert rows[0]["participants"] == "TH:co_lead;IOM:participant"

    rows[0]["status"] = "completed"
    unchanged = await upload(service, csv_file(rows, list(COLUMNS)), dry_run=True)
    assert unchanged.status_code == 200, unchanged.text
    assert [(r["action"], r["changed_fields"]) for r in unchanged.json()["results"]] == [
        ("update", ["status"]),
        ("unchanged", []),
    ]
    applied = await upload(service, csv_file(rows, list(COLUMNS)))
    assert applied.status_code == 200, applied.text
    assert (await service.get(second["id"])).json()["status"] == "completed"
    untouched = (await service.get(first["id"])).json()
    assert untouched["version"] == 1
    assert untouched["title"] == first["title"]
    events = await service.events(Stream.activities, subject=second["id"], expected=2)
    assert [e.type for e in events] == ["activity.created", "activity.status_changed"]

    stale = await upload(service, csv_file(rows, list(COLUMNS)))
    assert stale.status_code == 422
    assert [e["field"] for e in stale.json()["errors"]] == ["rows.2.version"]


async def test_xlsx_export_and_import(service: Service) -> None:
    marker = f"xlsx-{uuid4().hex[:6]}"
    created = await upload(
        service,
        xlsx_file([new_row(f"{marker} a", tags=marker), new_row(f"{marker} b", tags=marker)]),
        name="activities.xlsx",
    )
    assert created.status_code == 200, created.text
    assert created.json()["format"] == "xlsx"
    assert created.json()["created"] == 2

    exported = await service.client.get(
        "/v1/activities/export",
        params={"tag": marker, "format": "xlsx"},
        headers=service.tokens("PH"),
    )
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    sheet = openpyxl.load_workbook(io.BytesIO(exported.content)).active
    header, *values = list(sheet.iter_rows(values_only=True))
    assert list(header) == list(COLUMNS)
    assert sorted(row[2] for row in values) == [f"{marker} a", f"{marker} b"]

    reimported = await upload(service, exported.content, name="edited.xlsx", dry_run=True)
    assert reimported.status_code == 200, reimported.text
    assert [r["action"] for r in reimported.json()["results"]] == ["unchanged", "unchanged"]


async def test_unreadable_files_are_refused_naming_the_problem(service: Service) -> None:
    not_xlsx = await upload(service, b"PK\x03\x04garbage", name="a.xlsx")
    assert not_xlsx.status_code == 422
    assert not_xlsx.json()["errors"][0]["field"] == "body.file"
    named_xlsx = await upload(service, b"title\nx\n", name="a.xlsx")
    assert named_xlsx.status_code == 422
    not_utf8 = await upload(service, "title\ncaf\xe9\n".encode("latin-1"))
    assert not_utf8.status_code == 422
    unknown_column = await upload(service, b"title,titel\nx,y\n")
    assert unknown_column.status_code == 422
    assert unknown_column.json()["errors"][0]["field"] == "body.file.columns.titel"
    empty = await upload(service, b"")
    assert empty.status_code == 422
    missing = await service.client.post("/v1/activities/import", headers=service.tokens("PH"))
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "body.file"
    too_many = csv_file([new_row(f"row {n}") for n in range(service.settings.import_max_rows + 1)])
    refused = await upload(service, too_many)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "body.file"


async def test_an_import_honours_idempotency_key(service: Service) -> None:
    marker = f"idem-import-{uuid4().hex[:6]}"
    content = csv_file([new_row(f"{marker} one")])
    headers = {**service.tokens("PH"), "Idempotency-Key": f"import-{uuid4()}"}
    first = await upload(service, content, headers=headers)
    second = await upload(service, content, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert await titles_of(service, marker) == [f"{marker} one"]
    other_file = await upload(service, csv_file([new_row(f"{marker} two")]), headers=headers)
    assert other_file.status_code == 422


async def test_exports_follow_the_list_rules(service: Service) -> None:
    marker = f"export-rules-{uuid4().hex[:6]}"
    kept = await service.create("PH", tags=[marker])
    dropped = await service.create("PH", tags=[marker])
    await service.client.delete(f"/v1/activities/{dropped['id']}", headers=service.tokens("PH"))

    async def exported_ids(headers: dict[str, str], **params: Any) -> list[str]:
        response = await service.client.get(
            "/v1/activities/export", params={"tag": marker, **params}, headers=headers
        )
        assert response.status_code == 200
        return [r["id"] for r in csv.DictReader(io.StringIO(response.content.decode("utf-8-sig")))]

    assert await exported_ids(service.tokens("TH")) == [kept["id"]]
    assert await exported_ids(service.tokens("TH"), include_deleted="true") == [kept["id"]]
    assert await exported_ids(service.tokens.ops(), include_deleted="true") == [
        dropped["id"],
        kept["id"],
    ]
    bad_filter = await service.client.get(
        "/v1/activities/export", params={"item": 26}, headers=service.tokens.ops()
    )
    assert bad_filter.status_code == 422
    assert bad_filter.json()["errors"][0]["field"] == "query.item"
    assert (await service.client.get("/v1/activities/export")).status_code == 401

    capped = service.settings.model_copy(update={"export_max_rows": 1})
    async with started(capped) as small:
        too_many = await small.client.get(
            "/v1/activities/export",
            params={"tag": marker, "include_deleted": "true"},
            headers=small.tokens.ops(),
        )
        assert too_many.status_code == 422
        assert too_many.headers["content-type"] == PROBLEM


async def test_no_part_of_a_list_cell_starts_a_formula(service: Service) -> None:
    """Spreadsheet software that splits cells on ';' must not find a formula after one."""
    marker = f"formula-parts-{uuid4().hex[:6]}"
    created = await service.create("PH", tags=[marker, "=1+1", "@sum(a1)"], title=f"{marker} x")
    formula_starts = ("=", "+", "-", "@", "\t", "\r")

    exported = await service.client.get(
        "/v1/activities/export", params={"tag": marker}, headers=service.tokens("PH")
    )
    (row,) = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    parts = row["tags"].split(";")
    assert len(parts) == 3
    assert not [part for part in parts if part.lstrip(" ").startswith(formula_starts)]

    workbook = await service.client.get(
        "/v1/activities/export",
        params={"tag": marker, "format": "xlsx"},
        headers=service.tokens("PH"),
    )
    sheet = openpyxl.load_workbook(io.BytesIO(workbook.content)).active
    header, values = list(sheet.iter_rows(values_only=True))
    tags_cell = str(values[list(header).index("tags")])
    assert not [p for p in tags_cell.split(";") if p.lstrip(" ").startswith(formula_starts)]

    unchanged = await upload(service, exported.content, dry_run=True)
    assert unchanged.status_code == 200, unchanged.text
    assert [r["action"] for r in unchanged.json()["results"]] == ["unchanged"]
    assert (await service.get(created["id"])).json()["tags"] == [marker, "=1+1", "@sum(a1)"]
