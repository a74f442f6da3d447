"""Spreadsheet output written once: cells neutralised against formula injection, CSV and XLSX bytes.

A spreadsheet runs text that starts with `=`, `+`, `-`, `@`, a tab or a carriage
return as a formula (OWASP "CSV injection"). Such text is written with a leading
apostrophe. List cells join their values with `;`, and spreadsheet software set to
split on `;` would see a formula at the start of any part, so every `;`-separated
part is neutralised the same way. `restore` undoes it for imports of our own files.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from typing import Any

import openpyxl

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#: The export formats every spreadsheet download offers, with their media types.
MEDIA_TYPES = {"csv": CSV_MEDIA_TYPE, "xlsx": XLSX_MEDIA_TYPE}

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
LIST_SEPARATOR = ";"

# A part begins at the start of the cell or after a separator, after any spaces
# (software that trims them would otherwise expose the formula).
_RISKY_PART = re.compile(r"(^|;)( *)(?=[=+\-@\t\r])")
_GUARDED_PART = re.compile(r"(^|;)( *)'(?=[=+\-@\t\r])")
# XLSX cannot hold these control characters at all; openpyxl refuses them.
_ILLEGAL_XLSX = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def neutralise(cell: Any) -> Any:
    """The cell as it may be written: text with an apostrophe before every formula start."""
    if isinstance(cell, str):
        return _RISKY_PART.sub(r"\1\2'", cell)
    return cell


def restore(text: str) -> str:
    """Text read back from one of our files, without the apostrophes `neutralise` added."""
    return _GUARDED_PART.sub(r"\1\2", text)


def list_cell(values: Iterable[Any]) -> str:
    """Values joined as one cell; written through `neutralise` like every other cell."""
    return LIST_SEPARATOR.join(str(value) for value in values)


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """UTF-8 CSV with a byte order mark, so spreadsheet programs read names such as Türkiye."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([neutralise(name) for name in header])
    for row in rows:
        writer.writerow([neutralise(cell) for cell in row])
    return buffer.getvalue().encode("utf-8-sig")


def xlsx_bytes(header: Sequence[str], rows: Iterable[Sequence[Any]], *, sheet_title: str) -> bytes:
    """One worksheet; dates and numbers stay typed, text is neutralised like CSV cells."""
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet(sheet_title[:31])
    sheet.append([_xlsx_cell(name) for name in header])
    for row in rows:
        sheet.append([_xlsx_cell(cell) for cell in row])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _xlsx_cell(cell: Any) -> Any:
    value = neutralise(cell)
    if isinstance(value, str):
        return _ILLEGAL_XLSX.sub("\ufffd", value)
    return value
