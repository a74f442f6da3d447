"""Report downloads: `GET /v1/reports/<name>/export?format=csv|xlsx`, one convention for all.

The export route of a report takes the same filters as its JSON route (the same
dependency parses them) and writes every row, not one page; past `export_max_rows`
it is refused with a 422 asking for narrower filters. Cells go through
`bali_common.tabular` (formula injection neutralised); times are UTC, written as ISO
8601 in CSV and as zone-less UTC in XLSX, which cannot hold a zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from enum import Enum
from typing import Annotated, Any, Literal

import anyio.to_thread
from bali_common.http.pagination import PageRequest
from bali_common.problems import field_error, problem_responses
from bali_common.tabular import MEDIA_TYPES, csv_bytes, xlsx_bytes
from fastapi import Query, Response

ExportFormat = Literal["csv", "xlsx"]
FormatQuery = Annotated[
    ExportFormat, Query(alias="format", description="csv or xlsx", examples=["xlsx"])
]


def export_page(max_rows: int) -> PageRequest:
    """A page as large as an export may be; a next cursor means there is more."""
    return PageRequest(page_size=max_rows)


def too_many_rows(max_rows: int) -> Exception:
    return field_error("query", f"more than {max_rows} rows: narrow the filters to export")


def export_responses(columns: Sequence[str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI of an export route: the two media types, with the header row as example."""
    return {
        200: {
            "description": "The report as a spreadsheet (one header row, then the rows)",
            "content": {
                "text/csv": {"schema": {"type": "string"}, "example": ",".join(columns) + "\r\n"},
                MEDIA_TYPES["xlsx"]: {"schema": {"type": "string", "format": "binary"}},
            },
        },
        **problem_responses(401, 403, 422),
    }


async def spreadsheet(
    name: str, file_format: ExportFormat, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> Response:
    cells = [[_cell(value, file_format) for value in row] for row in rows]
    if file_format == "xlsx":
        content = await anyio.to_thread.run_sync(
            lambda: xlsx_bytes(columns, cells, sheet_title=name)
        )
    else:
        content = csv_bytes(columns, cells)
    return Response(
        content,
        media_type=MEDIA_TYPES[file_format],
        headers={"Content-Disposition": f'attachment; filename="{name}.{file_format}"'},
    )


def _cell(value: Any, file_format: ExportFormat) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        moment = value.astimezone(UTC) if value.tzinfo else value
        if file_format == "xlsx":
            return moment.replace(tzinfo=None)
        return moment.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value if file_format == "xlsx" else value.isoformat()
    if isinstance(value, bool):
        return value if file_format == "xlsx" else str(value).lower()
    return value
