"""Tables of the activity log, and the limits its fields share with the API models."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from bali_common.catalogue import load_strategy
from bali_common.db import utcnow
from sqlalchemy import JSON, Column, Date, DateTime, Index, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeEngine
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

#: The list columns the list filters search: JSONB on PostgreSQL, where GIN indexes answer
#: containment (`@>`, `?|`); JSON on SQLite, searched with `json_each`.
SEARCHABLE_JSON: TypeEngine[Any] = JSON().with_variant(JSONB(), "postgresql")
#: Searchable list columns; each has a GIN index on PostgreSQL (`ix_activities_<name>`).
SEARCHED_LISTS = ("items", "members", "countries", "tags")


def _gin_index(column: str) -> Index:
    """PostgreSQL only: on SQLite an index on JSON text answers no filter and costs each write."""
    index = Index(f"ix_activities_{column}", column, postgresql_using="gin")
    return index.ddl_if(dialect="postgresql")


class Activity(SQLModel, table=True):
    """The current state of an activity; every version is also kept in `activity_versions`."""

    __tablename__ = "activities"
    __table_args__ = (
        Index("ix_activities_listing", "created_at", "id"),
        Index("ix_activities_window", "window_start", "window_end"),
        *(_gin_index(column) for column in SEARCHED_LISTS),
    )

    id: str = SQLField(primary_key=True, max_length=36)
    version: int = 1
    strategy_id: str = SQLField(default=STRATEGY.id, max_length=50)
    title: str = SQLField(max_length=MAX_TITLE)
    description: str = SQLField(default="", sa_column=Column(Text, nullable=False))
    items: list[int] = SQLField(sa_column=Column(SEARCHABLE_JSON, nullable=False))
    areas: list[int] = SQLField(sa_column=Column(JSON, nullable=False))
    type: str = SQLField(max_length=40, index=True)
    status: str = SQLField(max_length=20, index=True)
    lead_member: str = SQLField(max_length=20, index=True)
    participants: list[dict[str, str]] = SQLField(
        default_factory=list, sa_column=Column(JSON, nullable=False, default=list)
    )
    members: list[str] = SQLField(
        default_factory=list,
        sa_column=Column(SEARCHABLE_JSON, nullable=False, default=list),
        description="Every member involved, the lead and the participants, sorted: what the "
        "member filter searches",
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
    countries: list[str] = SQLField(
        default_factory=list, sa_column=Column(SEARCHABLE_JSON, nullable=False, default=list)
    )
    outputs: list[dict[str, Any]] = SQLField(
        default_factory=list, sa_column=Column(JSON, nullable=False, default=list)
    )
    tags: list[str] = SQLField(
        default_factory=list, sa_column=Column(SEARCHABLE_JSON, nullable=False, default=list)
    )
    documents: list[dict[str, str]] = SQLField(
        default_factory=list, sa_column=Column(JSON, nullable=False, default=list)
    )
    related_alert_id: str | None = SQLField(default=None, max_length=100)
    created_at: datetime = SQLField(
        default_factory=utcnow,
        sa_column=Column(DateTime(timezone=True), nullable=False, default=utcnow),
    )
    updated_at: datetime = SQLField(
        default_factory=utcnow,
        sa_column=Column(DateTime(timezone=True), nullable=False, default=utcnow),
    )
    deleted: bool = SQLField(default=False, index=True)
    deleted_at: datetime | None = SQLField(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class ActivityVersion(SQLModel, table=True):
    """One row per version: full snapshot, what changed, who, when, and in which trace.

    A creation's changes are its snapshot's fields (each from nothing): they are stored once,
    as the snapshot, with `changes` left empty, and read back from it (`queries.py`).
    """

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
        default_factory=utcnow,
        sa_column=Column(DateTime(timezone=True), nullable=False, default=utcnow),
    )
    trace_id: str | None = SQLField(default=None, max_length=32)
