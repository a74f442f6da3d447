"""Tables of the alerts: current state, who they affect, timeline, escalation timers, used links."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlmodel
from bali_common.db import as_utc, utc_column
from bali_common.events.alerts import AlertStatus
from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint, text
from sqlmodel import SQLModel

OPEN_STATUSES = frozenset(
    {
        AlertStatus.raised,
        AlertStatus.escalated,
        AlertStatus.acknowledged,
        AlertStatus.consultation_convened,
        AlertStatus.outreach_under_way,
    }
)
UNACKNOWLEDGED_STATUSES = frozenset({AlertStatus.raised, AlertStatus.escalated})
CLOSED_STATUSES = frozenset({AlertStatus.resolved, AlertStatus.withdrawn})


class Alert(SQLModel, table=True):
    """One alert in its current state; every change bumps `version` and adds a timeline row."""

    __tablename__ = "consultation_alerts"
    __table_args__ = (
        # One open alert per (raising member, dedup key): `open_dedup_key` is NULL once closed,
        # and NULLs never collide, so concurrent raises of one situation cannot both insert.
        UniqueConstraint("raised_by_member", "open_dedup_key", name="uq_alert_open_dedup"),
        Index("ix_alert_raised", "raised_at", "id"),
        Index("ix_alert_updated", "updated_at", "id"),
    )

    id: str = sqlmodel.Field(primary_key=True, max_length=36)
    version: int = 1
    status: str = sqlmodel.Field(max_length=30, index=True)
    situation_type: str = sqlmodel.Field(max_length=40)
    title: str = sqlmodel.Field(max_length=160)
    description: str = sqlmodel.Field(sa_column=Column(Text, nullable=False))
    severity: str = sqlmodel.Field(max_length=10)
    urgency: str = sqlmodel.Field(max_length=10)
    certainty: str = sqlmodel.Field(max_length=10)
    sensitivity: str = sqlmodel.Field(max_length=10)
    raised_by_member: str = sqlmodel.Field(max_length=50, index=True)
    raised_by_subject: str = sqlmodel.Field(max_length=300)
    raised_by_name: str | None = sqlmodel.Field(default=None, max_length=300)
    affected_members: list[str] = sqlmodel.Field(default_factory=list, sa_column=Column(JSON))
    location: dict[str, Any] = sqlmodel.Field(default_factory=dict, sa_column=Column(JSON))
    people_affected: dict[str, Any] | None = sqlmodel.Field(default=None, sa_column=Column(JSON))
    requested_actions: list[str] = sqlmodel.Field(default_factory=list, sa_column=Column(JSON))
    dedup_key: str = sqlmodel.Field(max_length=200)
    open_dedup_key: str | None = sqlmodel.Field(default=None, max_length=200)
    raised_at: datetime = sqlmodel.Field(sa_column=utc_column())
    updated_at: datetime = sqlmodel.Field(sa_column=utc_column())
    acknowledged_at: datetime | None = sqlmodel.Field(
        default=None, sa_column=utc_column(nullable=True)
    )
    acknowledged_by: dict[str, Any] | None = sqlmodel.Field(default=None, sa_column=Column(JSON))
    convened_at: datetime | None = sqlmodel.Field(default=None, sa_column=utc_column(nullable=True))
    resolved_at: datetime | None = sqlmodel.Field(default=None, sa_column=utc_column(nullable=True))
    closed_at: datetime | None = sqlmodel.Field(default=None, sa_column=utc_column(nullable=True))
    status_before_close: str | None = sqlmodel.Field(default=None, max_length=30)
    resolution_summary: str | None = sqlmodel.Field(
        default=None, sa_column=Column(Text, nullable=True)
    )
    withdrawal_reason: str | None = sqlmodel.Field(
        default=None, sa_column=Column(Text, nullable=True)
    )
    escalation_level: int = 0
    escalation_plan: int = 1
    escalation_anchor_at: datetime = sqlmodel.Field(sa_column=utc_column())


class AlertAffectedMember(SQLModel, table=True):
    """Who an alert affects, as rows, so that visibility filters stay portable SQL."""

    __tablename__ = "alert_affected_members"

    alert_id: str = sqlmodel.Field(primary_key=True, max_length=36)
    member_id: str = sqlmodel.Field(primary_key=True, max_length=50, index=True)


class AlertTimelineEntry(SQLModel, table=True):
    """One step of an alert's life: who, when, what. Row `version` is the alert's after the step."""

    __tablename__ = "alert_timeline"
    __table_args__ = (UniqueConstraint("alert_id", "version", name="uq_timeline_version"),)

    id: int | None = sqlmodel.Field(default=None, primary_key=True)
    alert_id: str = sqlmodel.Field(max_length=36, index=True)
    version: int
    kind: str = sqlmodel.Field(max_length=40)
    at: datetime = sqlmodel.Field(sa_column=utc_column())
    actor_subject: str = sqlmodel.Field(max_length=300)
    actor_member: str | None = sqlmodel.Field(default=None, max_length=50)
    actor_name: str | None = sqlmodel.Field(default=None, max_length=300)
    details: dict[str, Any] = sqlmodel.Field(default_factory=dict, sa_column=Column(JSON))


class EscalationTimer(SQLModel, table=True):
    """A due escalation step; it fires once: `fired_at` is set by a conditional UPDATE."""

    __tablename__ = "escalation_timers"
    __table_args__ = (
        Index(
            "ix_escalation_timers_pending",
            "due_at",
            postgresql_where=text("fired_at IS NULL AND cancelled_at IS NULL"),
            sqlite_where=text("fired_at IS NULL AND cancelled_at IS NULL"),
        ),
    )

    id: str = sqlmodel.Field(primary_key=True, max_length=36)
    alert_id: str = sqlmodel.Field(max_length=36, index=True)
    plan: int = sqlmodel.Field(
        description="Raised and each reopening of an unacknowledged alert: a plan"
    )
    step: int = sqlmodel.Field(description="1-based position in the severity's escalation policy")
    due_at: datetime = sqlmodel.Field(sa_column=utc_column())
    notify_senior_officials: bool = False
    created_at: datetime = sqlmodel.Field(sa_column=utc_column())
    fired_at: datetime | None = sqlmodel.Field(default=None, sa_column=utc_column(nullable=True))
    cancelled_at: datetime | None = sqlmodel.Field(
        default=None, sa_column=utc_column(nullable=True)
    )
    claimed_by: str | None = sqlmodel.Field(
        default=None, max_length=200, description="Replica that fired"
    )


class UsedLinkToken(SQLModel, table=True):
    """Link tokens already honoured: the primary key makes each single use."""

    __tablename__ = "used_link_tokens"

    token_id: str = sqlmodel.Field(primary_key=True, max_length=100)
    purpose: str = sqlmodel.Field(max_length=100)
    subject: str = sqlmodel.Field(max_length=100)
    recipient: str = sqlmodel.Field(max_length=300)
    used_at: datetime = sqlmodel.Field(sa_column=utc_column())


def optional_utc(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)
