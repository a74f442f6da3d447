"""Inbox: the ids of events a consumer group has applied, written in the same transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_common.db import utcnow


class InboxEntry(SQLModel, table=True):
    """The primary key makes a second apply of the same event by one group impossible."""

    __tablename__ = "inbox_entries"

    consumer_group: str = Field(primary_key=True, max_length=200)
    event_id: str = Field(primary_key=True, max_length=64)
    event_type: str = Field(max_length=100)
    topic: str = Field(max_length=200)
    partition: int
    offset: int
    processed_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


async def already_applied(session: AsyncSession, *, group: str, event_id: str) -> bool:
    found = await session.exec(
        select(InboxEntry.event_id).where(
            InboxEntry.consumer_group == group,
            InboxEntry.event_id == event_id,
        )
    )
    return found.first() is not None


async def applied_among(session: AsyncSession, *, group: str, event_ids: list[str]) -> list[str]:
    found = await session.exec(
        select(InboxEntry.event_id).where(
            InboxEntry.consumer_group == group,
            col(InboxEntry.event_id).in_(event_ids),
        )
    )
    return list(found.all())
