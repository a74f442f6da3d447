"""Activity trends: activities per strategy area and month they start, by status and type.

An activity serving items of two areas counts in both; the totals (area 0 in the
table) count it once. Deleted activities count nowhere.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any

from bali_common.db import table_of
from bali_common.events.activities import (
    ActivityEvent,
    ActivityStatus,
    ActivitySummary,
    ActivityType,
)
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, Column, Index, select
from sqlmodel import Field as TableField
from sqlmodel import SQLModel
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
    fetch,
)
from bali_reporting.projections.dating import UNDATED, month_text, start_month

ALL_AREAS = 0
AREA_OF = {item.number: item.area_number for item in STRATEGY.items}
AREA_NAMES = {area.number: area.name for area in STRATEGY.areas}


class TrendHead(SQLModel, table=True):
    __tablename__ = "trend_heads"

    activity_id: str = TableField(primary_key=True, max_length=64)
    version: int
    contribution: dict[str, Any] = TableField(sa_column=Column(JSON, nullable=False))


class TrendTally(SQLModel, table=True):
    """Activities per start month (yyyymm, 0 undated), area (0 all), status and type."""

    __tablename__ = "trend_tallies"
    __table_args__ = (Index("ix_trend_tallies_n", "n"),)

    month: int = TableField(primary_key=True)
    area_number: int = TableField(primary_key=True)
    status: str = TableField(primary_key=True, max_length=20)
    type: str = TableField(primary_key=True, max_length=40)
    n: int


TALLIES = {
    "trends": Tally(
        table_of(TrendTally), keys=("month", "area_number", "status", "type"), measures=("n",)
    )
}


def contribution(activity: ActivitySummary) -> Contribution:
    shares: dict[Key, tuple[int, ...]] = {}
    if not activity.deleted:
        month, status, kind = start_month(activity), activity.status.value, activity.type.value
        areas = {AREA_OF[n] for n in activity.item_numbers if n in AREA_OF}
        for area in (ALL_AREAS, *areas):
            add_share(shares, (month, area, status, kind), (1,))
    return {"trends": shares}


def snapshots(batch: Sequence[Applied]) -> Iterator[tuple[str, int, ActivitySummary]]:
    for _, payload in batch:
        if isinstance(payload, ActivityEvent):
            yield payload.activity.activity_id, payload.activity.version, payload.activity


apply, fold = contribution_fold(snapshots, contribution, table_of(TrendHead), TALLIES)


PROJECTION = Projection(
    name="trends", models=(TrendHead, TrendTally), takes=(ActivityEvent,), apply=apply, fold=fold
)


# --- query --------------------------------------------------------------------------------------


class TrendCell(BaseModel):
    month: str | None = Field(description="YYYY-MM the activities start in; null: undated")
    area: int | None = Field(description="Strategy area; null in `totals` (all areas)")
    status: ActivityStatus
    type: ActivityType
    activities: int


class TrendsReport(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "date_from": "2025-01-01",
                    "date_to": "2025-12-31",
                    "months": ["2025-01", "2025-02"],
                    "area_names": {"4": "Irregular Migration and Related Transnational Crime"},
                    "cells": [
                        {
                            "month": "2025-03",
                            "area": 4,
                            "status": "completed",
                            "type": "workshop",
                            "activities": 2,
                        }
                    ],
                    "totals": [
                        {
                            "month": "2025-03",
                            "area": None,
                            "status": "completed",
                            "type": "workshop",
                            "activities": 3,
                        }
                    ],
                }
            ]
        }
    )

    date_from: date | None
    date_to: date | None
    months: list[str] = Field(description="Every month of the range, for charts with gaps")
    area_names: dict[int, str] = Field(description="The strategy areas by number")
    cells: list[TrendCell] = Field(description="Per area; an activity of two areas is in both")
    totals: list[TrendCell] = Field(description="All areas, each activity counted once")


async def trends_report(session: AsyncSession, filters: ReportFilters) -> TrendsReport:
    """Months are those overlapping the date range (all, undated too, when there is none)."""
    table = table_of(TrendTally)
    query = select(table.c.month, table.c.area_number, table.c.status, table.c.type, table.c.n)
    first = last = None
    if filters.date_from is not None:
        first = filters.date_from.year * 100 + filters.date_from.month
        query = query.where(table.c.month >= first)
    if filters.date_to is not None:
        last = filters.date_to.year * 100 + filters.date_to.month
        query = query.where(table.c.month <= last, table.c.month != UNDATED)
    areas = [ALL_AREAS, filters.area] if filters.area is not None else None
    if areas is not None:
        query = query.where(table.c.area_number.in_(areas))
    query = query.order_by(table.c.month, table.c.area_number, table.c.status, table.c.type)
    cells: list[TrendCell] = []
    totals: list[TrendCell] = []
    seen_months: set[int] = set()
    for month, area, status, kind, n in await fetch(session, query):
        seen_months.add(month)
        cell = TrendCell(
            month=month_text(month),
            area=area or None,
            status=ActivityStatus(status),
            type=ActivityType(kind),
            activities=n,
        )
        (totals if area == ALL_AREAS else cells).append(cell)
    dated = sorted(m for m in seen_months if m != UNDATED)
    start = first or (dated[0] if dated else None)
    end = last or (dated[-1] if dated else None)
    return TrendsReport(
        date_from=filters.date_from,
        date_to=filters.date_to,
        months=_months(start, end),
        area_names=AREA_NAMES,
        cells=cells,
        totals=totals,
    )


def _months(first: int | None, last: int | None) -> list[str]:
    if first is None or last is None:
        return []
    months: list[str] = []
    year, month = divmod(first, 100)
    while year * 100 + month <= last:
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


COLUMNS = ("month", "area", "area_name", "status", "type", "activities")


def rows(report: TrendsReport) -> Iterator[list[Any]]:
    """Per-area cells, then the totals with an empty area."""
    for cell in (*report.cells, *report.totals):
        yield [
            cell.month,
            cell.area,
            report.area_names.get(cell.area) if cell.area else None,
            cell.status.value,
            cell.type.value,
            cell.activities,
        ]
