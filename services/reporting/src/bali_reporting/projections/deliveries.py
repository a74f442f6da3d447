"""Delivery health: per channel success, attempts, alert-to-delivery latency, exhausted and warned.

Delivery events carry no version, so each delivery's row is a merge of its events in
which every field is a minimum, a maximum or an "or" (ties broken by value): merging
is commutative and idempotent, so any order and any repetition give the same row. The
latency joins the alert board at query time, so it does not matter which came first.
Recipients are not kept: the report is about channels, not people.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from bali_common.db import as_utc, table_of, utc_column
from bali_common.events.alerts import Severity
from bali_common.events.notifications import (
    Channel,
    DeliveryEvent,
    NotificationDelivered,
    NotificationExhausted,
)
from bali_common.http.pagination import PageRequest, keyset_page
from bali_common.visibility import AlertViewer
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Index, and_, case, func, or_
from sqlalchemy import select as select_columns
from sqlmodel import Field as TableField
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_reporting.filters import ReportFilters
from bali_reporting.projections.alerts import AlertBoardEntry, visible_alert_ids, within_days
from bali_reporting.projections.base import (
    Applied,
    MergedRowsFold,
    Projection,
    execute_many,
    fetch,
    insert_for,
)
from bali_reporting.projections.response_times import nearest_rank

_DESCRIPTIVE = ("channel", "alert_id", "member_id", "severity", "source_event_type")


class DeliveryRecord(SQLModel, table=True):
    __tablename__ = "delivery_health"
    __table_args__ = (
        Index("ix_delivery_health_last", "last_at", "delivery_id"),
        Index("ix_delivery_health_alert", "alert_id"),
    )

    delivery_id: str = TableField(primary_key=True, max_length=64)
    channel: str = TableField(max_length=20)
    alert_id: str | None = TableField(default=None, max_length=64)
    member_id: str | None = TableField(default=None, max_length=50)
    severity: str | None = TableField(default=None, max_length=20)
    source_event_type: str = TableField(max_length=100)
    first_at: datetime = TableField(sa_column=utc_column())
    last_at: datetime = TableField(sa_column=utc_column())
    attempts: int
    delivered_at: datetime | None = TableField(default=None, sa_column=utc_column(nullable=True))
    exhausted_at: datetime | None = TableField(default=None, sa_column=utc_column(nullable=True))
    exhausted_reason: str | None = TableField(default=None, max_length=40)
    operator_warning: bool = False
    last_error_at: datetime | None = TableField(default=None, sa_column=utc_column(nullable=True))
    last_error: str | None = TableField(default=None, max_length=500)


def facts(payload: DeliveryEvent) -> dict[str, Any]:
    """What one event says about its delivery, as a row to merge."""
    at = as_utc(payload.occurred_at)
    error = getattr(payload, "error", None)
    return {
        "delivery_id": payload.delivery_id,
        "channel": payload.channel.value,
        "alert_id": payload.alert_id,
        "member_id": payload.member_id,
        "severity": payload.severity,
        "source_event_type": payload.source_event_type,
        "first_at": at,
        "last_at": at,
        "attempts": payload.attempt,
        "delivered_at": at if isinstance(payload, NotificationDelivered) else None,
        "exhausted_at": at if isinstance(payload, NotificationExhausted) else None,
        "exhausted_reason": payload.reason if isinstance(payload, NotificationExhausted) else None,
        "operator_warning": bool(getattr(payload, "operator_warning", False)),
        "last_error_at": at if error is not None else None,
        "last_error": error[:500] if isinstance(error, str) else None,
    }


def _least(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else min(a, b)


def merged(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The Python twin of the SQL merge in `apply`."""
    row = {name: _least(a[name], b[name]) for name in (*_DESCRIPTIVE, "delivered_at")}
    row |= {
        "delivery_id": a["delivery_id"],
        "first_at": min(a["first_at"], b["first_at"]),
        "last_at": max(a["last_at"], b["last_at"]),
        "attempts": max(a["attempts"], b["attempts"]),
        "operator_warning": a["operator_warning"] or b["operator_warning"],
    }
    exhausted = [r for r in (a, b) if r["exhausted_at"] is not None]
    first = min(
        exhausted, key=lambda r: (r["exhausted_at"], r["exhausted_reason"] or ""), default=a
    )
    row |= {"exhausted_at": first["exhausted_at"], "exhausted_reason": first["exhausted_reason"]}
    failed = [r for r in (a, b) if r["last_error_at"] is not None]
    last = max(failed, key=lambda r: (r["last_error_at"], r["last_error"] or ""), default=a)
    return row | {"last_error_at": last["last_error_at"], "last_error": last["last_error"]}


def _least_sql(old: Any, new: Any) -> Any:
    """The smaller of two nullable values (NULL only when both are)."""
    return case((old.is_(None), new), (new.is_(None), old), (new < old, new), else_=old)


def merge_into(
    rows: dict[str, dict[str, Any]], batch: Sequence[Applied]
) -> dict[str, dict[str, Any]]:
    """Each delivery's events merged into one row (`rows`: those merged so far)."""
    for _, payload in batch:
        if isinstance(payload, DeliveryEvent):
            row = facts(payload)
            held = rows.get(payload.delivery_id)
            rows[payload.delivery_id] = row if held is None else merged(held, row)
    return rows


async def apply(session: AsyncSession, batch: Sequence[Applied]) -> None:
    rows = merge_into({}, batch)
    table = table_of(DeliveryRecord)
    t = table.c
    if not rows:
        return
    statement = insert_for(session, table)
    x = statement.excluded  # type: ignore[attr-defined]

    earlier_exhaustion = or_(
        t.exhausted_at.is_(None),
        and_(
            x.exhausted_at.is_not(None),
            or_(
                x.exhausted_at < t.exhausted_at,
                and_(x.exhausted_at == t.exhausted_at, x.exhausted_reason < t.exhausted_reason),
            ),
        ),
    )
    later_error = or_(
        t.last_error_at.is_(None),
        and_(
            x.last_error_at.is_not(None),
            or_(
                x.last_error_at > t.last_error_at,
                and_(x.last_error_at == t.last_error_at, x.last_error > t.last_error),
            ),
        ),
    )
    statement = statement.on_conflict_do_update(  # type: ignore[attr-defined]
        index_elements=["delivery_id"],
        set_={
            **{name: _least_sql(t[name], x[name]) for name in (*_DESCRIPTIVE, "delivered_at")},
            "first_at": case((x.first_at < t.first_at, x.first_at), else_=t.first_at),
            "last_at": case((x.last_at > t.last_at, x.last_at), else_=t.last_at),
            "attempts": case((x.attempts > t.attempts, x.attempts), else_=t.attempts),
            "operator_warning": or_(t.operator_warning, x.operator_warning),
            "exhausted_at": case((earlier_exhaustion, x.exhausted_at), else_=t.exhausted_at),
            "exhausted_reason": case(
                (earlier_exhaustion, x.exhausted_reason), else_=t.exhausted_reason
            ),
            "last_error_at": case((later_error, x.last_error_at), else_=t.last_error_at),
            "last_error": case((later_error, x.last_error), else_=t.last_error),
        },
    )
    await execute_many(session, statement, [rows[key] for key in sorted(rows)])


PROJECTION = Projection(
    name="deliveries",
    models=(DeliveryRecord,),
    takes=(DeliveryEvent,),
    apply=apply,
    fold=lambda: MergedRowsFold(merge_into, table_of(DeliveryRecord)),
)


# --- query --------------------------------------------------------------------------------------


class ChannelHealth(BaseModel):
    channel: Channel
    deliveries: int
    delivered: int
    exhausted: int
    pending: int = Field(description="Neither delivered nor given up yet")
    success_rate: float | None = Field(description="Delivered over delivered plus exhausted")
    attempts: int
    retried: int = Field(description="Deliveries that needed more than one attempt")
    operator_warnings: int
    alert_to_delivery_median_s: int | None = Field(description="From the alert's raise")
    alert_to_delivery_p90_s: int | None


class DeliveryProblem(BaseModel):
    delivery_id: str
    channel: Channel
    member_id: str | None
    alert_id: str | None
    alert_title: str | None
    severity: Severity | None
    source_event_type: str
    attempts: int
    first_at: datetime
    last_at: datetime
    exhausted_at: datetime | None
    exhausted_reason: str | None
    operator_warning: bool
    last_error: str | None


class DeliveryHealthReport(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "channels": [
                        {
                            "channel": "email",
                            "deliveries": 40,
                            "delivered": 38,
                            "exhausted": 1,
                            "pending": 1,
                            "success_rate": 0.974,
                            "attempts": 45,
                            "retried": 4,
                            "operator_warnings": 1,
                            "alert_to_delivery_median_s": 3,
                            "alert_to_delivery_p90_s": 12,
                        }
                    ],
                    "items": [],
                    "next_cursor": None,
                }
            ]
        }
    )

    channels: list[ChannelHealth]
    items: list[DeliveryProblem] = Field(description="Exhausted or warned deliveries, newest first")
    next_cursor: str | None = None


def _conditions(filters: ReportFilters) -> list[Any]:
    conditions = within_days(col(DeliveryRecord.first_at), filters)
    if filters.severity is not None:
        conditions.append(col(DeliveryRecord.severity) == filters.severity.value)
    if filters.channel is not None:
        conditions.append(col(DeliveryRecord.channel) == filters.channel.value)
    if filters.member is not None:
        conditions.append(col(DeliveryRecord.member_id) == filters.member)
    return conditions


async def delivery_health(
    session: AsyncSession, filters: ReportFilters, *, viewer: AlertViewer, page: PageRequest
) -> DeliveryHealthReport:
    """Channel figures count every delivery (they show no alert content); the listed
    deliveries are those of alerts the viewer may see, or of no alert."""
    conditions = _conditions(filters)
    record = DeliveryRecord
    summary = (
        select_columns(
            col(record.channel),
            func.count(),
            func.count(col(record.delivered_at)),
            func.count(col(record.exhausted_at)),
            func.sum(col(record.attempts)),
            func.sum(case((col(record.attempts) > 1, 1), else_=0)),
            func.sum(case((col(record.operator_warning), 1), else_=0)),
        )
        .where(*conditions)
        .group_by(col(record.channel))
    )
    latencies = await _latencies(session, conditions)
    channels = []
    for channel, total, delivered, exhausted, attempts, retried, warned in await fetch(
        session, summary
    ):
        settled = delivered + exhausted
        waits = latencies.get(channel, [])
        channels.append(
            ChannelHealth(
                channel=Channel(channel),
                deliveries=total,
                delivered=delivered,
                exhausted=exhausted,
                pending=total - settled,
                success_rate=round(delivered / settled, 4) if settled else None,
                attempts=attempts or 0,
                retried=retried or 0,
                operator_warnings=warned or 0,
                alert_to_delivery_median_s=nearest_rank(waits, 50),
                alert_to_delivery_p90_s=nearest_rank(waits, 90),
            )
        )
    problems = select(record).where(
        *conditions, or_(col(record.exhausted_at).is_not(None), col(record.operator_warning))
    )
    if not viewer.sees_everything:
        problems = problems.where(
            or_(col(record.alert_id).is_(None), col(record.alert_id).in_(visible_alert_ids(viewer)))
        )
    found = await keyset_page(
        session,
        problems,
        page=page,
        order_by=[col(record.last_at), col(record.delivery_id)],
        descending=True,
    )
    titles = await _alert_titles(session, [r.alert_id for r in found.rows if r.alert_id])
    return DeliveryHealthReport(
        channels=sorted(channels, key=lambda c: c.channel.value),
        items=[_problem(r, titles.get(r.alert_id or "")) for r in found.rows],
        next_cursor=found.next_cursor,
    )


async def _latencies(session: AsyncSession, conditions: list[Any]) -> dict[str, list[int]]:
    query = (
        select_columns(
            col(DeliveryRecord.channel),
            col(DeliveryRecord.delivered_at),
            col(AlertBoardEntry.raised_at),
        )
        .join(AlertBoardEntry, col(AlertBoardEntry.alert_id) == col(DeliveryRecord.alert_id))
        .where(*conditions, col(DeliveryRecord.delivered_at).is_not(None))
    )
    waits: dict[str, list[int]] = defaultdict(list)
    for channel, delivered_at, raised_at in await fetch(session, query):
        assert delivered_at is not None  # the query asks for delivered ones
        seconds = (as_utc(delivered_at) - as_utc(raised_at)).total_seconds()
        waits[channel].append(max(0, round(seconds)))
    return waits


async def _alert_titles(session: AsyncSession, alert_ids: list[str]) -> dict[str, str]:
    if not alert_ids:
        return {}
    found = await fetch(
        session,
        select_columns(col(AlertBoardEntry.alert_id), col(AlertBoardEntry.title)).where(
            col(AlertBoardEntry.alert_id).in_(set(alert_ids))
        ),
    )
    return {str(alert_id): str(title) for alert_id, title in found}


def _problem(record: DeliveryRecord, title: str | None) -> DeliveryProblem:
    return DeliveryProblem(
        delivery_id=record.delivery_id,
        channel=Channel(record.channel),
        member_id=record.member_id,
        alert_id=record.alert_id,
        alert_title=title,
        severity=_severity(record.severity),
        source_event_type=record.source_event_type,
        attempts=record.attempts,
        first_at=as_utc(record.first_at),
        last_at=as_utc(record.last_at),
        exhausted_at=as_utc(record.exhausted_at) if record.exhausted_at else None,
        exhausted_reason=record.exhausted_reason,
        operator_warning=record.operator_warning,
        last_error=record.last_error,
    )


def _severity(value: str | None) -> Severity | None:
    return Severity(value) if value in {s.value for s in Severity} else None


CHANNEL_COLUMNS = (
    "channel",
    "deliveries",
    "delivered",
    "exhausted",
    "pending",
    "success_rate",
    "attempts",
    "retried",
    "operator_warnings",
    "alert_to_delivery_median_s",
    "alert_to_delivery_p90_s",
)


def rows(report: DeliveryHealthReport) -> Iterator[list[Any]]:
    """The channel figures: the listed deliveries are a page of their own."""
    for c in report.channels:
        yield [
            c.channel.value,
            c.deliveries,
            c.delivered,
            c.exhausted,
            c.pending,
            c.success_rate,
            c.attempts,
            c.retried,
            c.operator_warnings,
            c.alert_to_delivery_median_s,
            c.alert_to_delivery_p90_s,
        ]
