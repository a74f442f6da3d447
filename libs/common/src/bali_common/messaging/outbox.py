"""Transactional outbox: events are rows in the caller's transaction; a relay publishes them
(`relay.py`).

The API never loses an event because the broker is down: the row commits with
the state change, and the relay publishes it (acks=all) whenever the broker answers.

Sent rows are kept for a retention window, then purged in batches. Each broker start has
an incarnation (the cluster id in its metadata); a relay that finds a new incarnation
publishes its kept rows again, in order, and the consumers' inbox makes the repeats
harmless. That is what keeps a memory-only broker's restart from losing events; on Apache
Kafka the incarnation never changes and only the purge runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import (
    Column,
    Index,
    LargeBinary,
    Text,
    delete,
    event,
    func,
    text,
)
from sqlalchemy.orm import Session
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_common.db import SessionFactory, table_of, transaction, utc_column, utcnow
from bali_common.events.envelope import CloudEvent
from bali_common.events.registry import EventPayload
from bali_common.events.topics import STREAM_TOPICS, TopicSpec
from bali_common.telemetry import current_traceparent

#: Keys in `Session.info`, set once on the session factory by the service runtime.
SIGNAL_INFO_KEY = "bali_outbox_signal"
SOURCE_INFO_KEY = "bali_event_source"
_STAGED_INFO_KEY = "bali_outbox_staged"
_PENDING_ROWS_KEY = "bali_outbox_rows"


class OutboxMessage(SQLModel, table=True):
    """One record to publish: generic over topics, so dead letters travel the same way."""

    __tablename__ = "outbox_messages"
    __table_args__ = (
        # The relay's claim and the backlog gauge read only unsent rows, however many are kept.
        Index(
            "ix_outbox_pending",
            "id",
            sqlite_where=text("sent_at IS NULL"),
            postgresql_where=text("sent_at IS NULL"),
        ),
        Index("ix_outbox_sent_at", "sent_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(max_length=64, unique=True)
    topic: str = Field(max_length=200, description="Catalogue name, without the environment prefix")
    key: str = Field(max_length=200)
    event_type: str = Field(max_length=100)
    headers: str = Field(sa_column=Column(Text, nullable=False), description="JSON [[name, text]]")
    value: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    traceparent: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())
    claimed_by: str | None = Field(default=None, max_length=200)
    claimed_until: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    sent_at: datetime | None = Field(default=None, sa_column=utc_column(nullable=True))
    sent_incarnation: str | None = Field(
        default=None, max_length=200, description="Cluster id of the broker that acknowledged it"
    )
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class ClaimedRecord(NamedTuple):
    """What the relay needs of a claimed row to publish it."""

    id: int
    topic: str
    key: str
    headers: str
    value: bytes
    traceparent: str | None


class BrokerIncarnation(SQLModel, table=True):
    """The broker incarnation this service's relay publishes to (one row)."""

    __tablename__ = "broker_incarnation"

    name: str = Field(primary_key=True, max_length=20)
    cluster_id: str = Field(max_length=200)
    seen_at: datetime = Field(default_factory=utcnow, sa_column=utc_column())


class OutboxSignal:
    """Wakes the relay when a transaction that staged events commits."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
        self._event.clear()


#: Built once: every transaction that staged records executes it with their rows.
_INSERT_OUTBOX = table_of(OutboxMessage).insert()


@event.listens_for(Session, "before_commit")
def _write_staged_rows(session: Session) -> None:
    """The transaction's staged records, in one multi-row INSERT just before it commits."""
    rows = session.info.pop(_PENDING_ROWS_KEY, None)
    if rows:
        # Core, not the ORM's bulk path: the rows are plain values, nothing to map.
        session.connection().execute(_INSERT_OUTBOX, rows)
        session.info[_STAGED_INFO_KEY] = True


@event.listens_for(Session, "after_commit")
def _wake_relay_after_commit(session: Session) -> None:
    if session.info.pop(_STAGED_INFO_KEY, False):
        signal = session.info.get(SIGNAL_INFO_KEY)
        if isinstance(signal, OutboxSignal):
            signal.notify()


@event.listens_for(Session, "after_rollback")
def _forget_staged_after_rollback(session: Session) -> None:
    session.info.pop(_PENDING_ROWS_KEY, None)
    session.info.pop(_STAGED_INFO_KEY, None)


def stage_record(
    session: AsyncSession,
    *,
    topic: TopicSpec,
    event_id: str,
    key: str,
    event_type: str,
    headers: Sequence[tuple[str, bytes]],
    value: bytes,
    traceparent: str | None,
) -> None:
    """Add a record to the caller's transaction; it is written when that transaction commits
    (and dropped if it rolls back), with every record the transaction staged."""
    session.info.setdefault(_PENDING_ROWS_KEY, []).append(
        {
            "event_id": event_id,
            "topic": topic.name,
            "key": key,
            "event_type": event_type,
            "headers": json.dumps([[name, raw.decode()] for name, raw in headers]),
            "value": value,
            "traceparent": traceparent,
            "created_at": utcnow(),
            "attempts": 0,
        }
    )


def stage_event(session: AsyncSession, payload: EventPayload, *, subject: str) -> CloudEvent:
    """Stage `payload` as a CloudEvent in the caller's transaction; nothing is sent until commit.

    The source is the service the session factory belongs to, and the trace
    context is the active span's, so the consumer's span joins the request's trace.
    """
    source = session.info.get(SOURCE_INFO_KEY)
    if not isinstance(source, str):
        raise RuntimeError("session factory was not built by the service runtime (no source)")
    cloud_event = CloudEvent.of(
        payload, source=source, subject=subject, traceparent=current_traceparent()
    )
    stage_record(
        session,
        topic=STREAM_TOPICS[payload.stream],
        event_id=str(cloud_event.id),
        key=subject,
        event_type=cloud_event.type,
        headers=cloud_event.kafka_headers(),
        value=cloud_event.kafka_value(),
        traceparent=cloud_event.traceparent,
    )
    return cloud_event


async def purge_sent(sessions: SessionFactory, *, older_than: datetime, batch: int) -> int:
    """Delete rows sent before `older_than`, a batch per transaction (writers never wait long)."""
    purged = 0
    while True:
        async with transaction(sessions) as session:
            ids = list(
                (
                    await session.exec(
                        select(OutboxMessage.id)
                        .where(col(OutboxMessage.sent_at) < older_than)
                        .order_by(col(OutboxMessage.id))
                        .limit(batch)
                    )
                ).all()
            )
            if ids:
                await session.exec(delete(OutboxMessage).where(col(OutboxMessage.id).in_(ids)))
        purged += len(ids)
        if len(ids) < batch:
            return purged


async def outbox_backlog(sessions: SessionFactory) -> int:
    async with sessions() as session:
        count = await session.exec(
            select(func.count()).where(OutboxMessage.sent_at.is_(None))  # type: ignore[union-attr]
        )
        return int(count.one())
