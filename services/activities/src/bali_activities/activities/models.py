"""Tables of the activity log, and the limits its fields share with the API models."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from bali_common.catalogue import load_strategy
from bali_common.db import utcnow
from sqlalchemy import JSON, Column, Date, DateTime, Index, Text
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

STRATEGY = load_strategy()
MAX_ITEM = max(STRATEGY.item_numbers)
MAX_AREA = len(STRATEGY.areas)

MAX_TITLE = 200
MAX_DESCRIPTION = 5000
MAX_TAGS = 20
MAX_TAG = 50
MAX_PARTICIPANTS = 50
MAX_COUNTRIES = 60
MAX_OUTPUTS = 50
MAX_DOCUMENTS = 20
MAX_AGE_GROUPS = 12
MAX_QUANTITY = 1_000_000_000_000


# --- tables -----------------------------------------------------------------------------------


class Activity(SQLModel, table=True):
    """The current state of an activity; every version is also kept in `activity_versions`."""

    __tablename__ = "activities"
    __table_args__ = (
        Index("ix_activities_listing", "created_at", "id"),
        Index("ix_activities_window", "window_start", "window_end"),
    )

    id: str = SQLField(primary_key=True, max_length=36)
    version: int = 1
    strategy_id: str = SQLField(default=STRATEGY.id, max_length=50)
    title: str = SQLField(max_length=MAX_TITLE)
    description: str = SQLField(default="", sa_column=Column(Text, nullable=False))
    items: list[int] = SQLField(sa_column=Column(JSON, nullable=False))
    areas: list[int] = SQLField(sa_column=Column(JSON, nullable=False))
    type: str = SQLField(max_length=40, index=True)
    status: str = SQLField(max_length=20, index=True)
    lead_member: str = SQLField(max_length=20, index=True)
    participants: list[dict[str, str]] = SQLField(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    planned_start: date | None = SQLField(default=None, sa_column=Column(Date, nullable=True))
    planned_end: date | None = SQLField(default=None, sa_column=Column(Date, nullable=True))
    actual_start: date | None = SQLField(default=None, sa_column=Column(Date, nullable=True))
    actual_end: date | None = SQLField(default=None, sa_column=Column(Date, nullable=True))
    window_start: date | None = SQLField(
        default=None,
        sa_column=Column(Date, nullable=True),
        description="Actual start, else planned start: what date-range filters compare",
    )
    window_end: date | None = SQLField(
        default=None,
        sa_column=Column(Date, nullable=True),
        description="Actual end, else planned end, else the window start",
    )
    countries: list[str] = SQLField(default_factory=list, sa_column=Column(JSON, nullable=False))
    outputs: list[dict[str, Any]] = SQLField(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    tags: list[str] = SQLField(default_factory=list, sa_column=Column(JSON, nullable=False))
    documents: list[dict[str, str]] = SQLField(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    related_alert_id: str | None = SQLField(default=None, max_length=100)
    created_at: datetime = SQLField(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    updated_at: datetime = SQLField(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    deleted: bool = SQLField(default=False, index=True)
    deleted_at: datetime | None = SQLField(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class IndexKind(StrEnum):
    item = "item"
    member = "member"
    tag = "tag"
    country = "country"


class ActivityIndexEntry(SQLModel, table=True):
    """One searchable value of a list field, so filters are plain joins on any database."""

    __tablename__ = "activity_index"
    __table_args__ = (Index("ix_activity_index_lookup", "kind", "value"),)

    activity_id: str = SQLField(foreign_key="activities.id", primary_key=True, max_length=36)
    kind: str = SQLField(primary_key=True, max_length=10)
    value: str = SQLField(primary_key=True, max_length=MAX_TAG)


class ActivityVersion(SQLModel, table=True):
    """One row per version: full snapshot, what changed, who, when, and in which trace."""

    __tablename__ = "activity_versions"

    activity_id: str = SQLField(foreign_key="activities.id", primary_key=True, max_length=36)
    version: int = SQLField(primary_key=True)
    action: str = SQLField(max_length=20)
    snapshot: dict[str, Any] = SQLField(sa_column=Column(JSON, nullable=False))
    changes: dict[str, Any] = SQLField(sa_column=Column(JSON, nullable=False))
    actor_subject: str = SQLField(max_length=300)
    actor_member: str | None = SQLField(default=None, max_length=100)
    actor_name: str | None = SQLField(default=None, max_length=200)
    at: datetime = SQLField(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    trace_id: str | None = SQLField(default=None, max_length=32)
