"""Inbox: the ids of events a consumer group has applied, written in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Index, delete, tuple_
from sqlalchemy import select as core_select
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_common.db import SessionFactory, execute_core, table_of, transaction, utc_column, utcnow


class InboxEntry(SQLModel, table=True):
    """The primary key makes a second apply of the same event by one group impossible."""

    __tablename__ = "inbox_entries"
    __table_args__ = (Index("ix_inbox_processed_at", "processed_at"),)

    consumer_group: str = Field(primary_key=True, max_length=200)
    event_id: str = Field(primary_key=True, max_length=64)
    event_type: str = Field(max_length=100)
    topic: str = Field(max_length=200)
    partition: int
    offset: int
    processed_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


_INBOX = table_of(InboxEntry)


async def already_applied(session: AsyncSession, *, group: str, event_id: str) -> bool:
    found = await session.exec(
        select(InboxEntry.event_id).where(
            InboxEntry.consumer_group == group,
            InboxEntry.event_id == event_id,
        )
    )
    return found.first() is not None


async def applied_among(session: AsyncSession, *, group: str, event_ids: list[str]) -> list[str]:
    """Core on the session's connection: asked once per fetched batch, and the ORM's compile
    and result layers cost more than the lookup itself."""
    found = await execute_core(
        session,
        core_select(_INBOX.c.event_id).where(
            _INBOX.c.consumer_group == group, _INBOX.c.event_id.in_(event_ids)
        ),
    )
    return list(found.scalars().all())


async def purge_applied(sessions: SessionFactory, *, older_than: datetime, batch: int) -> int:
    """Forget ids applied before `older_than`, a batch per transaction.

    Safe once no copy of those events can arrive again: the inbox retention is at least
    the outbox retention, after which no relay publishes a row again.
    """
    purged = 0
    while True:
        async with transaction(sessions) as session:
            keys = list(
                (
                    await session.exec(
                        select(InboxEntry.consumer_group, InboxEntry.event_id)
                        .where(col(InboxEntry.processed_at) < older_than)
                        .limit(batch)
                    )
                ).all()
            )
            if keys:
                primary_key = tuple_(col(InboxEntry.consumer_group), col(InboxEntry.event_id))
                await session.exec(delete(InboxEntry).where(primary_key.in_(keys)))
        purged += len(keys)
        if len(keys) < batch:
            return purged


@dataclass(frozen=True)
class AppliedEvent:
    """An inbox row to write: the event a consumer group has just applied."""

    consumer_group: str
    event_id: str
    event_type: str
    topic: str
    partition: int
    offset: int


async def record_applied(session: AsyncSession, applied: Sequence[AppliedEvent]) -> None:
    """The inbox rows of a batch in one INSERT, in the transaction that applied the events.

    A Core INSERT on the session's connection: the ORM's bulk path would look at each row's
    mapping (and autoflush first) for nothing, the rows being plain values. The handlers'
    pending objects are flushed at commit all the same, in this transaction.
    """
    if not applied:
        return
    now = utcnow()
    await execute_core(
        session,
        _INBOX.insert(),
        [
            {
                "consumer_group": entry.consumer_group,
                "event_id": entry.event_id,
                "event_type": entry.event_type,
                "topic": entry.topic,
                "partition": entry.partition,
                "offset": entry.offset,
                "processed_at": now,
            }
            for entry in applied
        ],
    )
