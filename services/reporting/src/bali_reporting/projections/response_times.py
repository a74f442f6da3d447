"""Response times: seconds from raise to first acknowledgement, consultation and resolution.

Per alert from its newest snapshot (the summary carries the first acknowledgement and
consultation times); median and 90th percentile by severity and quarter of the raise,
by the nearest-rank method (always a time some alert really took).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from bali_common.db import as_utc, table_of, utc_column
from bali_common.events.alerts import AlertEvent, AlertStatus, AlertSummary, Severity
from bali_common.visibility import AlertViewer
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Index
from sqlalchemy import select as select_columns
from sqlmodel import Field as TableField
from sqlmodel import SQLModel, col
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_reporting.filters import ReportFilters
from bali_reporting.projections.alerts import visible_alert_ids, within_days
from bali_reporting.projections.base import Applied, Projection, fetch, head_fold


class AlertResponse(SQLModel, table=True):
    __tablename__ = "alert_response_times"
    __table_args__ = (Index("ix_alert_response_raised", "raised_at"),)

    alert_id: str = TableField(primary_key=True, max_length=64)
    version: int
    severity: str = TableField(max_length=20)
    status: str = TableField(max_length=30)
    quarter: str = TableField(max_length=7)
    raised_at: datetime = TableField(sa_column=utc_column())
    to_acknowledge_s: int | None = None
    to_convene_s: int | None = None
    to_resolve_s: int | None = None


def quarter_of(moment: datetime) -> str:
    return f"{moment.year}-Q{(moment.month - 1) // 3 + 1}"


def _seconds(start: datetime, end: datetime | None) -> int | None:
    return max(0, int((as_utc(end) - start).total_seconds())) if end is not None else None


def snapshots(batch: Sequence[Applied]) -> Iterator[tuple[str, int, AlertSummary]]:
    for _, payload in batch:
        if isinstance(payload, AlertEvent):
            yield payload.alert.alert_id, payload.alert.version, payload.alert


def row(alert: AlertSummary) -> dict[str, Any]:
    raised = as_utc(alert.raised_at)
    resolved = alert.resolved_at if alert.status is AlertStatus.resolved else None
    return {
        "severity": alert.severity.value,
        "status": alert.status.value,
        "quarter": quarter_of(raised),
        "raised_at": raised,
        "to_acknowledge_s": _seconds(raised, alert.acknowledged_at),
        "to_convene_s": _seconds(raised, alert.convened_at),
        "to_resolve_s": _seconds(raised, resolved),
    }


apply, fold = head_fold(snapshots, row, table_of(AlertResponse))


PROJECTION = Projection(
    name="response_times",
    models=(AlertResponse,),
    takes=(AlertEvent,),
    apply=apply,
    fold=fold,
)


# --- query --------------------------------------------------------------------------------------


def nearest_rank(values: Sequence[int], percent: int) -> int | None:
    """The smallest value with at least `percent` % of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(percent * len(ordered) / 100)) - 1]


class Durations(BaseModel):
    alerts: int = Field(description="Alerts that reached this step")
    median_s: int | None
    p90_s: int | None


class ResponseTimeCell(BaseModel):
    severity: Severity
    quarter: str | None = Field(description="YYYY-Qn of the raise; null: the whole range")
    alerts: int
    acknowledge: Durations
    convene: Durations
    resolve: Durations


class ResponseTimesReport(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "cells": [
                        {
                            "severity": "Extreme",
                            "quarter": "2025-Q4",
                            "alerts": 4,
                            "acknowledge": {"alerts": 4, "median_s": 240, "p90_s": 900},
                            "convene": {"alerts": 3, "median_s": 5400, "p90_s": 9000},
                            "resolve": {"alerts": 2, "median_s": 86400, "p90_s": 172800},
                        }
                    ],
                    "overall": [],
                }
            ]
        }
    )

    cells: list[ResponseTimeCell] = Field(description="By severity and quarter")
    overall: list[ResponseTimeCell] = Field(description="By severity over the whole range")


async def response_times_report(
    session: AsyncSession, filters: ReportFilters, *, viewer: AlertViewer
) -> ResponseTimesReport:
    """Over the alerts the viewer may see, raised within the date range."""
    query = select_columns(
        col(AlertResponse.severity),
        col(AlertResponse.quarter),
        col(AlertResponse.to_acknowledge_s),
        col(AlertResponse.to_convene_s),
        col(AlertResponse.to_resolve_s),
    )
    if not viewer.sees_everything:
        query = query.where(col(AlertResponse.alert_id).in_(visible_alert_ids(viewer)))
    query = query.where(*within_days(col(AlertResponse.raised_at), filters))
    if filters.severity is not None:
        query = query.where(col(AlertResponse.severity) == filters.severity.value)
    groups: dict[tuple[str, str | None], list[tuple[int | None, ...]]] = defaultdict(list)
    for severity, quarter, *times in await fetch(session, query):
        groups[(severity, quarter)].append(tuple(times))
        groups[(severity, None)].append(tuple(times))
    cells = [_cell(severity, quarter, times) for (severity, quarter), times in groups.items()]
    order = [s.value for s in Severity]
    cells.sort(key=lambda c: (order.index(c.severity.value), c.quarter or ""))
    return ResponseTimesReport(
        cells=[c for c in cells if c.quarter is not None],
        overall=[c for c in cells if c.quarter is None],
    )


def _cell(
    severity: str, quarter: str | None, times: list[tuple[int | None, ...]]
) -> ResponseTimeCell:
    def durations(index: int) -> Durations:
        values = [t[index] for t in times if t[index] is not None]
        return Durations(
            alerts=len(values),
            median_s=nearest_rank(values, 50),  # type: ignore[arg-type]
            p90_s=nearest_rank(values, 90),  # type: ignore[arg-type]
        )

    return ResponseTimeCell(
        severity=Severity(severity),
        quarter=quarter,
        alerts=len(times),
        acknowledge=durations(0),
        convene=durations(1),
        resolve=durations(2),
    )


COLUMNS = (
    "severity",
    "quarter",
    "alerts",
    "acknowledged",
    "acknowledge_median_s",
    "acknowledge_p90_s",
    "convened",
    "convene_median_s",
    "convene_p90_s",
    "resolved",
    "resolve_median_s",
    "resolve_p90_s",
)


def rows(report: ResponseTimesReport) -> Iterator[list[Any]]:
    """By quarter, then the whole range with an empty quarter."""
    for cell in (*report.cells, *report.overall):
        yield [
            cell.severity.value,
            cell.quarter,
            cell.alerts,
            *(
                value
                for step in (cell.acknowledge, cell.convene, cell.resolve)
                for value in (step.alerts, step.median_s, step.p90_s)
            ),
        ]
