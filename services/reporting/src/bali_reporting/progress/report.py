"""What the progress report says, assembled from the projections' own queries.

The report reads coverage, trends, indicators, the alert board and response times
through the functions their routes call, so the figures a minister reads are the
figures the API and the dashboard show. Alerts are those the reader may see.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime

from bali_common.catalogue import load_strategy
from bali_common.events.activities import ActivityStatus, ActivityType
from bali_common.events.alerts import AlertStatus, Severity
from bali_common.http.pagination import PageRequest
from bali_common.visibility import AlertViewer
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_reporting.filters import ReportFilters
from bali_reporting.projections import alerts, coverage, indicators, response_times, trends
from bali_reporting.projections.indicators import IndicatorRow
from bali_reporting.projections.response_times import ResponseTimeCell

STRATEGY = load_strategy()
#: Alerts listed one by one; the counts and response times cover every alert of the year.
LISTED_ALERTS = 200
#: Indicator rows read for the report (all items, each output once).
INDICATOR_ROWS = 5_000


class Contributor(BaseModel):
    member_id: str
    name: str | None
    role: str = Field(examples=["lead"])
    activities: int


class ItemProgress(BaseModel):
    item: int
    text: str
    activities: int
    by_status: dict[ActivityStatus, int]
    covered: bool
    contributors: list[Contributor] = Field(description="Who did it: leads first")


class AreaProgress(BaseModel):
    area: int
    name: str
    activities: int = Field(description="Activities starting in the year, each counted once")
    by_type: dict[ActivityType, int]
    items: list[ItemProgress]


class AlertHandled(BaseModel):
    alert_id: str
    title: str
    severity: Severity
    status: AlertStatus
    raised_by: str
    raised_at: datetime
    to_acknowledge_s: int | None
    to_convene_s: int | None
    to_resolve_s: int | None


class AlertsOfYear(BaseModel):
    total: int
    by_status: dict[AlertStatus, int]
    by_severity: dict[Severity, int]
    response_times: list[ResponseTimeCell] = Field(
        description="Median and p90 by severity over the year"
    )
    listed: list[AlertHandled] = Field(description=f"The newest {LISTED_ALERTS}, newest first")


class UncoveredItem(BaseModel):
    item: int
    area: int
    text: str


class ProgressReport(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "year": 2025,
                    "strategy_id": "adelaide-2023",
                    "generated_at": "2025-11-28T03:00:00Z",
                    "areas": [
                        {
                            "area": 4,
                            "name": "Return and reintegration",
                            "activities": 3,
                            "by_type": {"workshop": 2, "training": 1},
                            "items": [
                                {
                                    "item": 12,
                                    "text": "Strengthen cooperation on return...",
                                    "activities": 3,
                                    "by_status": {"completed": 3},
                                    "covered": True,
                                    "contributors": [
                                        {
                                            "member_id": "TH",
                                            "name": "Thailand",
                                            "role": "lead",
                                            "activities": 2,
                                        }
                                    ],
                                }
                            ],
                        }
                    ],
                    "indicators": [],
                    "uncovered": [{"item": 19, "area": 6, "text": "..."}],
                    "alerts": {
                        "total": 1,
                        "by_status": {"resolved": 1},
                        "by_severity": {"Extreme": 1},
                        "response_times": [],
                        "listed": [],
                    },
                }
            ]
        }
    )

    year: int
    strategy_id: str
    generated_at: datetime
    areas: list[AreaProgress]
    indicators: list[IndicatorRow] = Field(
        description="Output totals per indicator over all items, with sex and age breakdowns"
    )
    uncovered: list[UncoveredItem] = Field(description="Items no activity served in the year")
    alerts: AlertsOfYear


async def progress_report(
    session: AsyncSession, year: int, *, viewer: AlertViewer, now: datetime
) -> ProgressReport:
    covered = await coverage.coverage_report(session, ReportFilters(year=year))
    year_range = ReportFilters(date_from=date(year, 1, 1), date_to=date(year, 12, 31))
    trend = await trends.trends_report(session, year_range)
    outputs = await indicators.indicators_report(
        session, ReportFilters(year=year), PageRequest(page_size=INDICATOR_ROWS)
    )
    board = await alerts.alert_board(
        session, year_range, viewer=viewer, now=now, page=PageRequest(page_size=LISTED_ALERTS)
    )
    times = await response_times.response_times_report(session, year_range, viewer=viewer)
    per_area: dict[int, Counter[ActivityType]] = {area.number: Counter() for area in STRATEGY.areas}
    for cell in trend.cells:
        if cell.area is not None:
            per_area[cell.area][cell.type] += cell.activities
    by_item = {item.item: item for item in covered.items}
    areas = [
        AreaProgress(
            area=area.number,
            name=area.name,
            activities=sum(per_area[area.number].values()),
            by_type=dict(per_area[area.number].most_common()),
            items=[_item(by_item[item.number], covered.member_names) for item in area.items],
        )
        for area in STRATEGY.areas
    ]
    return ProgressReport(
        year=year,
        strategy_id=covered.strategy_id,
        generated_at=now,
        areas=areas,
        indicators=[row for row in outputs.items if row.item is None],
        uncovered=[
            UncoveredItem(item=item.item, area=item.area, text=item.text)
            for item in covered.items
            if not item.covered
        ],
        alerts=AlertsOfYear(
            total=sum(board.by_status.values()),
            by_status=board.by_status,
            by_severity=board.by_severity,
            response_times=times.overall,
            listed=[_handled(row) for row in board.items],
        ),
    )


def _item(item: coverage.ItemCoverage, names: dict[str, str]) -> ItemProgress:
    contributors = sorted(
        item.members, key=lambda m: (m.role != "lead", -m.activities, m.member_id)
    )
    return ItemProgress(
        item=item.item,
        text=item.text,
        activities=item.activities,
        by_status=item.by_status,
        covered=item.covered,
        contributors=[
            Contributor(
                member_id=m.member_id,
                name=names.get(m.member_id),
                role=m.role,
                activities=m.activities,
            )
            for m in contributors
        ],
    )


def _handled(row: alerts.AlertBoardRow) -> AlertHandled:
    def since_raise(moment: datetime | None) -> int | None:
        return int((moment - row.raised_at).total_seconds()) if moment is not None else None

    resolved = row.closed_at if row.status is AlertStatus.resolved else None
    return AlertHandled(
        alert_id=row.alert_id,
        title=row.title,
        severity=row.severity,
        status=row.status,
        raised_by=row.raised_by.name or row.raised_by.member_id,
        raised_at=row.raised_at,
        to_acknowledge_s=since_raise(row.acknowledged_at),
        to_convene_s=since_raise(row.convened_at),
        to_resolve_s=since_raise(resolved),
    )
