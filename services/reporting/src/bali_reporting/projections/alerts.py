"""Alert board: every Consultation Mechanism alert the viewer may see, with its last step.

The newest version of each alert wins. Who may see an alert is the rule of
`bali_common.visibility`: lists narrow to public alerts plus those naming the viewer's
member unless the viewer sees everything, and each row is checked with `may_see`.
Other reports that show alert content narrow with `visible_alert_ids` from here.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from bali_common.db import as_utc, table_of, utc_column
from bali_common.events.alerts import AlertEvent, AlertStatus, Sensitivity, Severity
from bali_common.http.pagination import PageRequest, keyset_page
from bali_common.tabular import list_cell
from bali_common.visibility import AlertAudience, AlertViewer
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, Column, Index, delete, exists, func, or_
from sqlalchemy import select as select_columns
from sqlalchemy.sql import ColumnElement, Select
from sqlmodel import Field as TableField
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_reporting.filters import ReportFilters
from bali_reporting.projections.base import (
    Applied,
    NewestFold,
    Projection,
    advance,
    chunked,
    execute_many,
    fetch,
    insert_fresh,
    latest,
    write_heads,
)
from bali_reporting.projections.members import member_names

CLOSED = frozenset({AlertStatus.resolved.value, AlertStatus.withdrawn.value})


class AlertBoardEntry(SQLModel, table=True):
    """One row per alert: its newest snapshot and the step that produced it."""

    __tablename__ = "alert_board"
    __table_args__ = (Index("ix_alert_board_raised", "raised_at", "alert_id"),)

    alert_id: str = TableField(primary_key=True, max_length=64)
    version: int
    status: str = TableField(max_length=30)
    severity: str = TableField(max_length=20)
    urgency: str = TableField(max_length=20)
    situation_type: str = TableField(max_length=40)
    title: str = TableField(max_length=300)
    sensitivity: str = TableField(max_length=20)
    raised_by_member: str = TableField(max_length=50)
    affected_members: list[str] = TableField(sa_column=Column(JSON, nullable=False))
    people_affected: int | None = None
    escalation_level: int = 0
    raised_at: datetime = TableField(sa_column=utc_column())
    acknowledged_at: datetime | None = TableField(default=None, sa_column=utc_column(nullable=True))
    convened_at: datetime | None = TableField(default=None, sa_column=utc_column(nullable=True))
    closed_at: datetime | None = TableField(default=None, sa_column=utc_column(nullable=True))
    last_step: str = TableField(max_length=40)
    last_step_at: datetime = TableField(sa_column=utc_column())
    last_step_by: str | None = TableField(default=None, max_length=200)


class AlertAudienceEntry(SQLModel, table=True):
    """The members an alert names (raiser and affected): a restricted alert's audience."""

    __tablename__ = "alert_audience"
    __table_args__ = (Index("ix_alert_audience_member", "member_id", "alert_id"),)

    alert_id: str = TableField(primary_key=True, max_length=64)
    member_id: str = TableField(primary_key=True, max_length=50)


Step = tuple[str, AlertEvent]


def snapshots(batch: Sequence[Applied]) -> Iterator[tuple[str, int, Step]]:
    for event, payload in batch:
        if isinstance(payload, AlertEvent):
            yield payload.alert.alert_id, payload.alert.version, (event.type, payload)


def projected_entry(version: int, step: Step) -> tuple[dict[str, Any], list[str]]:
    """An alert's board row and its audience (the members it names), from its newest step."""
    event_type, payload = step
    alert = payload.alert
    occurred = as_utc(payload.occurred_at)
    closed = alert.status.value in CLOSED
    row = {
        "version": version,
        "status": alert.status.value,
        "severity": alert.severity.value,
        "urgency": alert.urgency.value,
        "situation_type": alert.situation_type.value,
        "title": alert.title,
        "sensitivity": alert.sensitivity.value,
        "raised_by_member": alert.raised_by_member,
        "affected_members": sorted(set(alert.affected_members)),
        "people_affected": alert.people_affected,
        "escalation_level": alert.escalation_level,
        "raised_at": as_utc(alert.raised_at),
        "acknowledged_at": _utc(alert.acknowledged_at),
        "convened_at": _utc(alert.convened_at),
        "closed_at": (_utc(alert.resolved_at) or occurred) if closed else None,
        "last_step": event_type.removeprefix("alert."),
        "last_step_at": occurred,
        "last_step_by": payload.actor.member_id or payload.actor.name or payload.actor.subject,
    }
    return row, sorted({alert.raised_by_member, *alert.affected_members})


Entry = tuple[dict[str, Any], list[str]]


def audience_rows(alert_ids: Iterable[str], entries: Mapping[str, Entry]) -> list[Any]:
    return [{"alert_id": a, "member_id": m} for a in alert_ids for m in entries[a][1]]


async def apply(session: AsyncSession, batch: Sequence[Applied]) -> None:
    entries = {
        alert_id: projected_entry(version, step)
        for alert_id, (version, step) in latest(snapshots(batch)).items()
    }
    written = await advance(
        session, table_of(AlertBoardEntry), {a: row for a, (row, _) in entries.items()}
    )
    if not written:
        return
    audience = table_of(AlertAudienceEntry)
    replaced = sorted(written)
    for ids in chunked(replaced):
        await session.exec(delete(audience).where(audience.c.alert_id.in_(ids)))
    named = audience_rows(replaced, entries)
    if named:
        await execute_many(session, audience.insert(), named)


def _entry_of(step: Step) -> Entry:
    return projected_entry(step[1].alert.version, step)


async def write(session: AsyncSession, newest: Mapping[str, tuple[int, Entry]]) -> None:
    entries = {alert_id: entry for alert_id, (_, entry) in newest.items()}
    await write_heads(
        session, table_of(AlertBoardEntry), {a: row for a, (row, _) in entries.items()}
    )
    await insert_fresh(
        session, table_of(AlertAudienceEntry), audience_rows(sorted(entries), entries)
    )


def _utc(value: datetime | None) -> datetime | None:
    return as_utc(value) if value is not None else None


PROJECTION = Projection(
    name="alerts",
    models=(AlertBoardEntry, AlertAudienceEntry),
    takes=(AlertEvent,),
    apply=apply,
    fold=lambda: NewestFold(snapshots, _entry_of, write),
)


# --- visibility and filters shared by the alert-based reports ------------------------------------


def audience_of(entry: AlertBoardEntry) -> AlertAudience:
    return AlertAudience(
        sensitivity=Sensitivity(entry.sensitivity),
        raised_by_member=entry.raised_by_member,
        affected_members=frozenset(entry.affected_members),
    )


def names_member(member_id: str) -> ColumnElement[bool]:
    """The alert names the member (raised it or is affected): the audience table says so."""
    return exists().where(
        col(AlertAudienceEntry.alert_id) == col(AlertBoardEntry.alert_id),
        col(AlertAudienceEntry.member_id) == member_id,
    )


def visible_clause(viewer: AlertViewer) -> ColumnElement[bool] | None:
    """The list form of the rule: None when the viewer sees everything, else public alerts
    plus those naming the viewer's member."""
    if viewer.sees_everything:
        return None
    public = col(AlertBoardEntry.sensitivity) == Sensitivity.public.value
    if viewer.member_id is None:
        return public
    return or_(public, names_member(viewer.member_id))


def visible_alert_ids(viewer: AlertViewer) -> Select[str]:
    """Ids of the alerts the viewer may see, for `alert_id IN (...)` in other reports."""
    query = select_columns(col(AlertBoardEntry.alert_id))
    clause = visible_clause(viewer)
    return query.where(clause) if clause is not None else query


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def within_days(moment: Any, filters: ReportFilters) -> list[ColumnElement[bool]]:
    """A timestamp column on the days of the filters' date range (UTC days)."""
    conditions: list[ColumnElement[bool]] = []
    if filters.date_from is not None:
        conditions.append(moment >= day_start(filters.date_from))
    if filters.date_to is not None:
        conditions.append(moment < day_start(filters.date_to + timedelta(days=1)))
    return conditions


# --- query --------------------------------------------------------------------------------------


class MemberRef(BaseModel):
    member_id: str
    name: str | None


class LastStep(BaseModel):
    step: str = Field(examples=["acknowledged"])
    at: datetime
    by: str | None


class AlertBoardRow(BaseModel):
    alert_id: str
    version: int
    title: str
    status: AlertStatus
    severity: Severity
    urgency: str
    situation_type: str
    sensitivity: Sensitivity
    raised_by: MemberRef
    affected_members: list[MemberRef]
    people_affected: int | None
    escalation_level: int
    raised_at: datetime
    open: bool
    age_seconds: int | None = Field(description="Seconds since raised, for open alerts")
    acknowledged_at: datetime | None
    convened_at: datetime | None
    closed_at: datetime | None
    last_step: LastStep


class AlertBoard(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "by_status": {"raised": 1, "acknowledged": 2},
                    "by_severity": {"Extreme": 1, "Severe": 2},
                    "items": [
                        {
                            "alert_id": "0b6f3f8e-2f7c-4a38-9a43-6c1f1f1f9a01",
                            "version": 2,
                            "title": "Two boats adrift south of Rote Island",
                            "status": "acknowledged",
                            "severity": "Extreme",
                            "urgency": "Immediate",
                            "situation_type": "maritime_distress",
                            "sensitivity": "public",
                            "raised_by": {"member_id": "TH", "name": "Thailand"},
                            "affected_members": [{"member_id": "ID", "name": "Indonesia"}],
                            "people_affected": 120,
                            "escalation_level": 0,
                            "raised_at": "2025-11-28T03:10:00Z",
                            "open": True,
                            "age_seconds": 5400,
                            "acknowledged_at": "2025-11-28T03:14:00Z",
                            "convened_at": None,
                            "closed_at": None,
                            "last_step": {
                                "step": "acknowledged",
                                "at": "2025-11-28T03:14:00Z",
                                "by": "ID",
                            },
                        }
                    ],
                    "next_cursor": None,
                }
            ]
        }
    )

    by_status: dict[AlertStatus, int] = Field(description="Every matching alert, all pages")
    by_severity: dict[Severity, int]
    items: list[AlertBoardRow]
    next_cursor: str | None = None


def _conditions(filters: ReportFilters, viewer: AlertViewer) -> list[ColumnElement[bool]]:
    conditions = within_days(col(AlertBoardEntry.raised_at), filters)
    clause = visible_clause(viewer)
    if clause is not None:
        conditions.append(clause)
    if filters.severity is not None:
        conditions.append(col(AlertBoardEntry.severity) == filters.severity.value)
    if filters.alert_status is not None:
        conditions.append(col(AlertBoardEntry.status) == filters.alert_status.value)
    if filters.open_only:
        conditions.append(col(AlertBoardEntry.status).not_in(CLOSED))
    if filters.member is not None:
        conditions.append(names_member(filters.member))
    return conditions


async def alert_board(
    session: AsyncSession,
    filters: ReportFilters,
    *,
    viewer: AlertViewer,
    now: datetime,
    page: PageRequest,
) -> AlertBoard:
    """Newest alerts first; the counts cover every page."""
    conditions = _conditions(filters, viewer)
    found = await keyset_page(
        session,
        select(AlertBoardEntry).where(*conditions),
        page=page,
        order_by=[col(AlertBoardEntry.raised_at), col(AlertBoardEntry.alert_id)],
        descending=True,
    )
    entries = [entry for entry in found.rows if viewer.may_see(audience_of(entry))]
    counts = await fetch(
        session,
        select_columns(col(AlertBoardEntry.status), col(AlertBoardEntry.severity), func.count())
        .where(*conditions)
        .group_by(col(AlertBoardEntry.status), col(AlertBoardEntry.severity)),
    )
    by_status: Counter[AlertStatus] = Counter()
    by_severity: Counter[Severity] = Counter()
    for status, severity, n in counts:
        by_status[AlertStatus(status)] += n
        by_severity[Severity(severity)] += n
    names = await member_names(
        session, {m for e in entries for m in (e.raised_by_member, *e.affected_members)}
    )
    return AlertBoard(
        by_status=dict(sorted(by_status.items())),
        by_severity=dict(sorted(by_severity.items())),
        items=[board_row(entry, names, now) for entry in entries],
        next_cursor=found.next_cursor,
    )


def board_row(entry: AlertBoardEntry, names: dict[str, str], now: datetime) -> AlertBoardRow:
    raised_at = as_utc(entry.raised_at)
    is_open = entry.status not in CLOSED
    return AlertBoardRow(
        alert_id=entry.alert_id,
        version=entry.version,
        title=entry.title,
        status=AlertStatus(entry.status),
        severity=Severity(entry.severity),
        urgency=entry.urgency,
        situation_type=entry.situation_type,
        sensitivity=Sensitivity(entry.sensitivity),
        raised_by=MemberRef(
            member_id=entry.raised_by_member, name=names.get(entry.raised_by_member)
        ),
        affected_members=[
            MemberRef(member_id=m, name=names.get(m)) for m in entry.affected_members
        ],
        people_affected=entry.people_affected,
        escalation_level=entry.escalation_level,
        raised_at=raised_at,
        open=is_open,
        age_seconds=max(0, int((now - raised_at).total_seconds())) if is_open else None,
        acknowledged_at=_utc(entry.acknowledged_at),
        convened_at=_utc(entry.convened_at),
        closed_at=_utc(entry.closed_at),
        last_step=LastStep(
            step=entry.last_step, at=as_utc(entry.last_step_at), by=entry.last_step_by
        ),
    )


COLUMNS = (
    "alert_id",
    "title",
    "status",
    "severity",
    "urgency",
    "situation_type",
    "sensitivity",
    "raised_by",
    "affected_members",
    "people_affected",
    "escalation_level",
    "raised_at",
    "age_seconds",
    "acknowledged_at",
    "convened_at",
    "closed_at",
    "last_step",
    "last_step_at",
    "last_step_by",
)


def rows(board: AlertBoard) -> Iterator[list[Any]]:
    for row in board.items:
        yield [
            row.alert_id,
            row.title,
            row.status.value,
            row.severity.value,
            row.urgency,
            row.situation_type,
            row.sensitivity.value,
            row.raised_by.member_id,
            list_cell(m.member_id for m in row.affected_members),
            row.people_affected,
            row.escalation_level,
            row.raised_at,
            row.age_seconds,
            row.acknowledged_at,
            row.convened_at,
            row.closed_at,
            row.last_step.step,
            row.last_step.at,
            row.last_step.by,
        ]


async def board_entry(
    session: AsyncSession, alert_id: str, *, viewer: AlertViewer, now: datetime
) -> AlertBoardRow | None:
    """One alert as the board shows it; None when it is unknown or hidden from the viewer
    (the same answer for both, so the page reveals nothing of a restricted alert)."""
    entry = await session.get(AlertBoardEntry, alert_id)
    if entry is None or not viewer.may_see(audience_of(entry)):
        return None
    names = await member_names(session, {entry.raised_by_member, *entry.affected_members})
    return board_row(entry, names, now)


async def board_signature(session: AsyncSession) -> str:
    """Changes whenever any alert on the board changes: what the live board polls for."""
    found = await fetch(
        session,
        select_columns(
            func.count(),
            func.max(col(AlertBoardEntry.last_step_at)),
            func.sum(col(AlertBoardEntry.version)),
        ),
    )
    return hashlib.sha256(repr(tuple(found[0])).encode()).hexdigest()[:16]
