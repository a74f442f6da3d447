"""Spreadsheet output: no cell, nor any ';'-separated part of one, starts a formula."""

from __future__ import annotations

import csv
import io
from datetime import date

import openpyxl
from bali_common.tabular import (
    FORMULA_START,
    csv_bytes,
    list_cell,
    neutralise,
    restore,
    xlsx_bytes,
)
from hypothesis import given
from hypothesis import strategies as st

texts = st.text(alphabet=st.sampled_from(list("ab =+-@;\t\r1")), max_size=20)


def risky_parts(cell: str) -> list[str]:
    return [part for part in cell.split(";") if part.lstrip(" ").startswith(FORMULA_START)]


@given(texts)
def test_no_part_of_a_neutralised_cell_starts_a_formula(text: str) -> None:
    assert risky_parts(neutralise(text)) == []


@given(texts)
def test_restore_undoes_neutralise(text: str) -> None:
    assert restore(neutralise(text)) == text


def test_list_elements_are_each_neutralised() -> None:
    assert neutralise(list_cell(["x", "=1+1", " -2", "ok"])) == "x;'=1+1; '-2;ok"
    assert neutralise(42) == 42
    assert neutralise(None) is None


def test_csv_and_xlsx_read_back_with_typed_values_and_neutralised_text() -> None:
    header = ["name", "tags", "count", "day"]
    rows = [
        ['=HYPERLINK("http://evil.example")', list_cell(["x", "@sum(a1)"]), 3, date(2025, 3, 1)]
    ]

    text = csv_bytes(header, rows).decode("utf-8-sig")
    read = list(csv.reader(io.StringIO(text)))
    assert read[0] == header
    assert read[1] == ['\'=HYPERLINK("http://evil.example")', "x;'@sum(a1)", "3", "2025-03-01"]

    sheet = openpyxl.load_workbook(io.BytesIO(xlsx_bytes(header, rows, sheet_title="t"))).active
    assert sheet is not None
    got_header, values = list(sheet.iter_rows(values_only=True))
    assert list(got_header) == header
    assert values[0] == '\'=HYPERLINK("http://evil.example")'
    assert values[1] == "x;'@sum(a1)"
    assert values[2] == 3
    assert values[3].date() == date(2025, 3, 1)
    assert sheet.cell(row=2, column=1).data_type == "s", "stored as text, not as a formula"
