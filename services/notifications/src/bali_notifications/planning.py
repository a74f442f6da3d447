"""Turning an event into delivery rows: rule recipients, subscribers, catch-up of missed alerts.

Consumers call these inside their transaction; nothing here commits or does network I/O.
"""

from __future__ import annotations

from datetime import datetime

from bali_common.db import utc_column
from bali_common.events.alerts import AlertStatus
from sqlmodel import Field, SQLModel

from bali_notifications.fields import json_list, timestamp_now

#: An alert in one of these states needs nobody told any more.
CLOSED_ALERT_STATUSES = (AlertStatus.resolved.value, AlertStatus.withdrawn.value)


class AlertState(SQLModel, table=True):
    """Each alert's latest state, kept from alert.* events (upserted by version).

    Routing reads the member directory when an alert event is planned; whoever
    joins the directory later is planned from here (`plan_missed_alerts`).
    """

    __tablename__ = "alert_states"

    alert_id: str = Field(primary_key=True, max_length=100)
    version: int
    status: str = Field(max_length=40)
    severity: str = Field(max_length=20)
    raised_at: datetime = Field(sa_column=utc_column(index=True))
    affected_members: list[str] = json_list()
    senior_officials_notified: bool = Field(
        default=False, description="An escalation asked for the co-chairs' senior officials"
    )
    event_id: str = Field(max_length=100, description="The latest event, kept in source_events")
    event_type: str = Field(max_length=100)
    updated_at: datetime = timestamp_now()
