"""Activities as spreadsheet rows: CSV and XLSX export, and parsing of uploads for bulk import.

An export can be edited and uploaded again: it has the same columns the import reads.
List cells hold values separated by ';' ("3;12", "TH:co_lead;IOM:participant"),
outputs and documents hold JSON. Cells are neutralised against formula injection by
`bali_common.tabular`, and the import restores what it neutralised.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import Any

import openpyxl
from bali_common.problems import FieldProblem, ProblemError, field_error
from bali_common.tabular import XLSX_MEDIA_TYPE, csv_bytes, list_cell, restore, xlsx_bytes

from bali_activities.activities.schemas import ActivityPublic, ImportRow

#: Every exported column, in order; the import reads the writable ones and skips the rest.
COLUMNS: tuple[str, ...] = (
    "id",
    "version",
    "title",
    "description",
    "items",
    "areas",
    "type",
    "status",
    "lead_member",
    "participants",
    "planned_start",
    "planned_end",
    "actual_start",
    "actual_end",
    "countries",
    "tags",
    "outputs",
    "documents",
    "related_alert_id",
    "deleted",
    "created_at",
    "updated_at",
)
READ_ONLY_COLUMNS = frozenset({"areas", "deleted", "created_at", "updated_at"})
#: Fields an update keeps when their cell is blank (they cannot be cleared).
_KEPT_WHEN_BLANK = frozenset({"title", "items", "type", "status", "lead_member"})
_LIST_COLUMNS = frozenset({"participants", "countries", "tags", "outputs", "documents"})
_SEPARATORS = re.compile(r"[;,\s]+")
_SHEET_TITLE = "activities"


# --- export -----------------------------------------------------------------------------------


def export_csv(activities: Sequence[ActivityPublic]) -> bytes:
    return csv_bytes(COLUMNS, (list(_cells(a, dates_as_text=True)) for a in activities))


def export_xlsx(activities: Sequence[ActivityPublic]) -> bytes:
    rows = (list(_cells(a, dates_as_text=False)) for a in activities)
    return xlsx_bytes(COLUMNS, rows, sheet_title=_SHEET_TITLE)


def _cells(activity: ActivityPublic, *, dates_as_text: bool) -> Iterator[Any]:
    def day(value: date | None) -> Any:
        if value is None:
            return None
        return value.isoformat() if dates_as_text else value

    others = [p for p in activity.participants if p.member_id != activity.lead_member]
    values: dict[str, Any] = {
        "id": activity.id,
        "version": activity.version,
        "title": activity.title,
        "description": activity.description,
        "items": list_cell(activity.items),
        "areas": list_cell(activity.areas),
        "type": activity.type.value,
        "status": activity.status.value,
        "lead_member": activity.lead_member,
        "participants": list_cell(f"{p.member_id}:{p.role.value}" for p in others),
        "planned_start": day(activity.planned_start),
        "planned_end": day(activity.planned_end),
        "actual_start": day(activity.actual_start),
        "actual_end": day(activity.actual_end),
        "countries": list_cell(activity.countries),
        "tags": list_cell(activity.tags),
        "outputs": _json_cell(
            [o.model_dump(mode="json", exclude_none=True) for o in activity.outputs]
        ),
        "documents": _json_cell([d.model_dump(mode="json") for d in activity.documents]),
        "related_alert_id": activity.related_alert_id,
        "deleted": "true" if activity.deleted else "false",
        "created_at": activity.created_at.isoformat(),
        "updated_at": activity.updated_at.isoformat(),
    }
    return (values[column] for column in COLUMNS)


def _json_cell(values: list[Any]) -> str | None:
    return json.dumps(values, ensure_ascii=False, separators=(",", ":")) if values else None


# --- import -----------------------------------------------------------------------------------


def detect_format(filename: str | None, content_type: str | None, data: bytes) -> str:
    """'xlsx' or 'csv', from the file itself first: an XLSX file is a zip archive."""
    if data.startswith(b"PK\x03\x04"):
        return "xlsx"
    name = (filename or "").lower()
    if name.endswith(".xlsx") or (content_type or "").startswith(XLSX_MEDIA_TYPE):
        raise field_error("body.file", "not a valid XLSX file")
    return "csv"


def parse_upload(
    data: bytes, *, file_format: str, max_rows: int, max_unpacked: int
) -> list[ImportRow]:
    """The sheet's data rows as import rows; a file that cannot be read at all is refused (422)."""
    records = (
        _xlsx_records(data, max_unpacked=max_unpacked)
        if file_format == "xlsx"
        else _csv_records(data)
    )
    header: list[str] | None = None
    rows: list[ImportRow] = []
    for number, record in records:
        if header is None:
            header = _header(record)
            continue
        if all(cell is None for cell in record):
            continue
        if len(rows) == max_rows:
            raise field_error("body.file", f"at most {max_rows} rows per import; split the file")
        cells = dict(zip(header, record, strict=False))
        rows.append(_import_row(number, cells))
    if header is None:
        raise field_error("body.file", "the file is empty: it needs a header row")
    return rows


def _header(record: Sequence[str | None]) -> list[str]:
    names = [(cell or "").strip().lower() for cell in record]
    problems: list[FieldProblem] = []
    for index, name in enumerate(names):
        if not name:
            if any(names[index:]):
                problems.append(_file_problem(f"body.file.columns.{index}", "column has no name"))
        elif name not in COLUMNS:
            problems.append(_file_problem(f"body.file.columns.{name}", "unknown column"))
        elif names.index(name) != index:
            problems.append(_file_problem(f"body.file.columns.{name}", "column appears twice"))
    if "title" not in names and "id" not in names:
        problems.append(
            _file_problem("body.file.columns", "needs a title column (or id to update)")
        )
    if problems:
        raise ProblemError(
            422,
            "Request validation failed",
            "The header row of the file is not usable.",
            slug="validation-error",
            errors=problems,
        )
    return names


def _file_problem(field: str, message: str) -> FieldProblem:
    return FieldProblem(field=field, message=message, type="value_error")


def _import_row(number: int, cells: dict[str, str | None]) -> ImportRow:
    prefix = f"rows.{number}"
    problems: list[FieldProblem] = []
    values: dict[str, Any] = {}
    activity_id = cells.get("id")
    version: int | None = None
    if cells.get("version") is not None:
        try:
            version = int(str(cells["version"]))
        except ValueError:
            problems.append(_file_problem(f"{prefix}.version", "not a whole number"))
    for column, cell in cells.items():
        if not column or column in READ_ONLY_COLUMNS or column in ("id", "version"):
            continue
        try:
            value = _field_value(column, cell)
        except ValueError as error:
            problems.append(_file_problem(f"{prefix}.{column}", str(error)))
            continue
        if value is None and (activity_id is None or column in _KEPT_WHEN_BLANK):
            # New activities take the defaults; updates keep what cannot be cleared.
            continue
        values[column] = value
    return ImportRow(
        row=number,
        values=values,
        activity_id=activity_id,
        version=version,
        problems=tuple(problems),
    )


def _field_value(column: str, cell: str | None) -> Any:
    """A cell's text as the API field value; blank is None, or empty for lists."""
    if cell is None:
        if column in _LIST_COLUMNS:
            return []
        return "" if column == "description" else None
    if column == "items":
        try:
            return [int(part) for part in _SEPARATORS.split(cell) if part]
        except ValueError:
            raise ValueError("item numbers separated by ';'") from None
    if column == "participants":
        return [_participant(part) for part in cell.split(";") if part.strip()]
    if column == "countries":
        return [part for part in _SEPARATORS.split(cell) if part]
    if column == "tags":
        return [part for part in cell.split(";") if part.strip()]
    if column in ("outputs", "documents"):
        try:
            parsed = json.loads(cell)
        except (json.JSONDecodeError, RecursionError):
            raise ValueError("a JSON list, as an export writes it") from None
        if not isinstance(parsed, list):
            raise ValueError("a JSON list, as an export writes it")
        return parsed
    return cell


def _participant(text: str) -> dict[str, str]:
    member_id, _, role = text.strip().partition(":")
    return {"member_id": member_id.strip(), "role": role.strip() or "participant"}


def _text(value: Any) -> str | None:
    """A cell as stripped text (None if blank), undoing the export's formula guard."""
    if value is None:
        return None
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, datetime):
        text = (
            value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()
        )
    elif isinstance(value, date):
        text = value.isoformat()
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    else:
        text = str(value)
    return restore(text.strip()) or None


def _csv_records(data: bytes) -> Iterator[tuple[int, list[str | None]]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise field_error("body.file", "a CSV file must be UTF-8 encoded") from None
    try:
        for number, record in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
            yield number, [_text(cell) for cell in record]
    except csv.Error as error:
        raise field_error("body.file", f"not a readable CSV file: {error}") from None


def _xlsx_records(data: bytes, *, max_unpacked: int) -> Iterator[tuple[int, list[str | None]]]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile:
        raise field_error("body.file", "not a valid XLSX file") from None
    if unpacked > max_unpacked:
        # A zip bomb would otherwise unpack into memory (OWASP API4).
        raise field_error("body.file", f"unpacks to more than {max_unpacked} bytes")
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as error:
        # openpyxl reports a malformed workbook with many exception types (zip, XML, KeyError).
        raise field_error(
            "body.file", f"not a readable XLSX file ({type(error).__name__})"
        ) from None
    try:
        sheet = (
            workbook[_SHEET_TITLE]
            if _SHEET_TITLE in workbook.sheetnames
            else workbook.worksheets[0]
        )
        rows = sheet.iter_rows(values_only=True)
        number = 0
        while True:
            try:
                record = next(rows, None)
            except Exception as error:
                raise field_error(
                    "body.file", f"not a readable XLSX file ({type(error).__name__})"
                ) from None
            if record is None:
                return
            number += 1
            yield number, [_text(cell) for cell in record]
    finally:
        workbook.close()
