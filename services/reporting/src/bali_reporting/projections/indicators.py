"""Indicators: output totals per indicator, strategy item and year, with sex and age breakdowns.

An output counts under each item its activity serves and once under "all items"
(item 0 in the tables), in the year the activity starts. Indicator names are compared
in lower case with single spaces. Values are summed as integer thousandths. Sex parts
are summed over the outputs that recorded them (`outputs_with_sex` says how many did).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

from bali_common.db import table_of
from bali_common.events.activities import ActivityEvent, ActivitySummary
from bali_common.http.pagination import PageRequest, keyset_page
from bali_common.tabular import list_cell
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, Column, Index
from sqlmodel import Field as TableField
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_reporting.filters import STRATEGY, ReportFilters
from bali_reporting.projections.base import (
    Applied,
    Contribution,
    Key,
    Projection,
    Tally,
    add_share,
    contribution_fold,
    milli,
    sum_column,
)
from bali_reporting.projections.dating import UNDATED, start_year

ALL_ITEMS = 0


class IndicatorHead(SQLModel, table=True):
    __tablename__ = "indicator_heads"

    activity_id: str = TableField(primary_key=True, max_length=64)
    version: int
    contribution: dict[str, Any] = TableField(sa_column=Column(JSON, nullable=False))


class IndicatorTally(SQLModel, table=True):
    """Per year, item (0: all), indicator and unit: outputs and value sums in thousandths."""

    __tablename__ = "indicator_tallies"
    __table_args__ = (Index("ix_indicator_tallies_n", "n"),)

    year: int = TableField(primary_key=True)
    indicator: str = TableField(primary_key=True, max_length=200)
    unit: str = TableField(primary_key=True, max_length=40)
    item_number: int = TableField(primary_key=True)
    n: int
    value: int = sum_column()
    with_sex: int
    female: int = sum_column()
    male: int = sum_column()
    other: int = sum_column()


class IndicatorAgeTally(SQLModel, table=True):
    __tablename__ = "indicator_age_tallies"
    __table_args__ = (Index("ix_indicator_age_tallies_n", "n"),)

    year: int = TableField(primary_key=True)
    indicator: str = TableField(primary_key=True, max_length=200)
    unit: str = TableField(primary_key=True, max_length=40)
    item_number: int = TableField(primary_key=True)
    age_group: str = TableField(primary_key=True, max_length=10)
    n: int
    value: int = sum_column()


TALLIES = {
    "indicators": Tally(
        table_of(IndicatorTally),
        keys=("year", "indicator", "unit", "item_number"),
        measures=("n", "value", "with_sex", "female", "male", "other"),
    ),
    "ages": Tally(
        table_of(IndicatorAgeTally),
        keys=("year", "indicator", "unit", "item_number", "age_group"),
        measures=("n", "value"),
    ),
}


def indicator_name(text: str) -> str:
    return " ".join(text.split()).lower()


def contribution(activity: ActivitySummary) -> Contribution:
    totals: dict[Key, tuple[int, ...]] = {}
    ages: dict[Key, tuple[int, ...]] = {}
    if not activity.deleted:
        year = start_year(activity)
        items = (ALL_ITEMS, *sorted(set(activity.item_numbers)))
        for output in activity.outputs:
            name, unit = indicator_name(output.indicator), (output.unit or "").strip()
            sex = output.by_sex
            measures = (
                1,
                milli(output.value),
                1 if sex is not None else 0,
                milli(sex.female) if sex else 0,
                milli(sex.male) if sex else 0,
                milli(sex.other) if sex else 0,
            )
            for item in items:
                add_share(totals, (year, name, unit, item), measures)
                for group in output.by_age:
                    add_share(
                        ages, (year, name, unit, item, group.age_group), (1, milli(group.value))
                    )
    return {"indicators": totals, "ages": ages}


def snapshots(batch: Sequence[Applied]) -> Iterator[tuple[str, int, ActivitySummary]]:
    for _, payload in batch:
        if isinstance(payload, ActivityEvent):
            yield payload.activity.activity_id, payload.activity.version, payload.activity


apply, fold = contribution_fold(snapshots, contribution, table_of(IndicatorHead), TALLIES)


PROJECTION = Projection(
    name="indicators",
    models=(IndicatorHead, IndicatorTally, IndicatorAgeTally),
    takes=(ActivityEvent,),
    apply=apply,
    fold=fold,
)


# --- query --------------------------------------------------------------------------------------


def quantity(thousandths: int) -> int | float:
    """40, not 40.0: counts of people read as counts."""
    return thousandths // 1000 if thousandths % 1000 == 0 else thousandths / 1000


class SexTotals(BaseModel):
    outputs_with_sex: int = Field(description="Outputs that recorded a breakdown by sex")
    female: int | float
    male: int | float
    other: int | float


class AgeTotal(BaseModel):
    age_group: str
    outputs: int
    value: int | float


class IndicatorRow(BaseModel):
    year: int | None = Field(description="Year the activities start; null: undated")
    item: int | None = Field(description="Strategy item; null: all items, each output once")
    area: int | None
    indicator: str
    unit: str | None
    outputs: int
    value: int | float
    by_sex: SexTotals
    by_age: list[AgeTotal]


class IndicatorsReport(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {
                            "year": 2025,
                            "item": 12,
                            "area": 4,
                            "indicator": "officers trained",
                            "unit": None,
                            "outputs": 2,
                            "value": 75,
                            "by_sex": {
                                "outputs_with_sex": 2,
                                "female": 33,
                                "male": 42,
                                "other": 0,
                            },
                            "by_age": [{"age_group": "25-39", "outputs": 1, "value": 31}],
                        }
                    ],
                    "next_cursor": None,
                }
            ]
        }
    )

    items: list[IndicatorRow]
    next_cursor: str | None = None


async def indicators_report(
    session: AsyncSession, filters: ReportFilters, page: PageRequest
) -> IndicatorsReport:
    """Ordered by year, indicator, unit and item (all items first)."""
    query = select(IndicatorTally)
    if filters.year is not None:
        query = query.where(col(IndicatorTally.year) == filters.year)
    if filters.indicator is not None:
        query = query.where(col(IndicatorTally.indicator) == filters.indicator)
    scope = filters.items_in_scope()
    if scope is not None:
        query = query.where(col(IndicatorTally.item_number).in_(scope))
    found = await keyset_page(
        session,
        query,
        page=page,
        order_by=[
            col(IndicatorTally.year),
            col(IndicatorTally.indicator),
            col(IndicatorTally.unit),
            col(IndicatorTally.item_number),
        ],
    )
    ages = await _ages(session, found.rows)
    return IndicatorsReport(
        items=[_row(tally, ages[_key(tally)]) for tally in found.rows],
        next_cursor=found.next_cursor,
    )


def _key(tally: IndicatorTally) -> tuple[int, str, str, int]:
    return (tally.year, tally.indicator, tally.unit, tally.item_number)


async def _ages(
    session: AsyncSession, tallies: Sequence[IndicatorTally]
) -> dict[tuple[int, str, str, int], list[AgeTotal]]:
    found: dict[tuple[int, str, str, int], list[AgeTotal]] = defaultdict(list)
    if not tallies:
        return found
    wanted = {_key(t) for t in tallies}
    query = (
        select(IndicatorAgeTally)
        .where(
            col(IndicatorAgeTally.year).in_({t.year for t in tallies}),
            col(IndicatorAgeTally.indicator).in_({t.indicator for t in tallies}),
            col(IndicatorAgeTally.item_number).in_({t.item_number for t in tallies}),
        )
        .order_by(col(IndicatorAgeTally.age_group))
    )
    for age in (await session.exec(query)).all():
        key = (age.year, age.indicator, age.unit, age.item_number)
        if key in wanted:
            found[key].append(
                AgeTotal(age_group=age.age_group, outputs=age.n, value=quantity(age.value))
            )
    return found


def _row(tally: IndicatorTally, ages: list[AgeTotal]) -> IndicatorRow:
    item = tally.item_number or None
    return IndicatorRow(
        year=tally.year if tally.year != UNDATED else None,
        item=item,
        area=STRATEGY.item(item).area_number if item else None,
        indicator=tally.indicator,
        unit=tally.unit or None,
        outputs=tally.n,
        value=quantity(tally.value),
        by_sex=SexTotals(
            outputs_with_sex=tally.with_sex,
            female=quantity(tally.female),
            male=quantity(tally.male),
            other=quantity(tally.other),
        ),
        by_age=ages,
    )


COLUMNS = (
    "year",
    "item",
    "area",
    "indicator",
    "unit",
    "outputs",
    "value",
    "outputs_with_sex",
    "female",
    "male",
    "other",
    "by_age",
)


def rows(report: IndicatorsReport) -> Iterator[list[Any]]:
    """`by_age` as 'group:value' parts, e.g. '18-24:12;25-39:31'."""
    for row in report.items:
        yield [
            row.year,
            row.item,
            row.area,
            row.indicator,
            row.unit,
            row.outputs,
            row.value,
            row.by_sex.outputs_with_sex,
            row.by_sex.female,
            row.by_sex.male,
            row.by_sex.other,
            list_cell(f"{age.age_group}:{age.value}" for age in row.by_age),
        ]
