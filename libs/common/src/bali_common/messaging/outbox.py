"""Transactional outbox: events are rows in the caller's transaction; a relay publishes them.

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
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from opentelemetry.trace import SpanKind
from sqlalchemy import (
    Column,
    Index,
    LargeBinary,
    Text,
    delete,
    event,
    func,
    insert,
    or_,
    text,
    update,
)
from sqlalchemy.orm import Session
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_common.db import SessionFactory, transaction, utc_column, utcnow
from bali_common.events.envelope import TRACEPARENT_HEADER, CloudEvent
from bali_common.events.registry import EventPayload
from bali_common.events.topics import STREAM_TOPICS, TopicSpec
from bali_common.messaging.kafka import broker_incarnation
from bali_common.metrics import ServiceMetrics
from bali_common.settings import CommonSettings
from bali_common.telemetry import current_traceparent, span_from_traceparent

log = logging.getLogger(__name__)

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


_INCARNATION_ROW = "broker"


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


@event.listens_for(Session, "before_commit")
def _write_staged_rows(session: Session) -> None:
    """The transaction's staged records, in one multi-row INSERT just before it commits."""
    rows = session.info.pop(_PENDING_ROWS_KEY, None)
    if rows:
        session.execute(insert(OutboxMessage), rows)
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


class OutboxRelay:
    """Publishes committed outbox rows in id order and marks them sent.

    Rows are claimed with a lease in a short transaction (FOR UPDATE SKIP LOCKED
    on PostgreSQL, so several relays share the work), published outside any
    transaction (a paused broker never holds a database connection), then
    marked sent. A relay that dies after publishing and before marking leaves
    the row to be published again: at-least-once, made exactly-once by the
    consumers' inbox.

    Before publishing it makes sure it talks to the broker incarnation its
    database last published to; on a new one it publishes every kept row again
    (see the module docstring). `on_new_broker` runs first (creating the topics,
    so that they get their catalogue partition counts rather than a default).
    """

    def __init__(
        self,
        *,
        settings: CommonSettings,
        session_factory: SessionFactory,
        producer: AIOKafkaProducer,
        signal: OutboxSignal,
        metrics: ServiceMetrics,
        after_publish: Callable[[ClaimedRecord], None] | None = None,
        on_new_broker: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._settings = settings
        self._sessions = session_factory
        self._producer = producer
        self._signal = signal
        self._metrics = metrics
        self._after_publish = after_publish or _fault_hook_from(settings)
        self._on_new_broker = on_new_broker
        self.relay_id = settings.relay_id or f"{socket.gethostname()}:{settings.service_name}"
        self._lease = timedelta(
            seconds=max(settings.outbox_claim_seconds, settings.kafka_request_timeout_ms / 1000 + 5)
        )
        self._incarnation: str | None = None
        self._broker_checked_at = -float("inf")

    async def run(self) -> None:
        await self._release_own_claims()
        while True:
            try:
                await self.drain()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay cycle failed; retrying")
            # A commit during the drain has set the signal already: no wait then.
            await self._signal.wait(self._settings.outbox_poll_interval_s)

    async def drain(self) -> int:
        """Publish until nothing claimable is left; returns how many rows were acknowledged."""
        total = 0
        while True:
            await self._follow_broker()
            rows = await self._claim()
            if not rows:
                return total
            sent_ids = await self._publish(rows)
            await self._mark_sent(sent_ids)
            total += len(sent_ids)
            # A short batch was all there was: no further (empty) claim.
            if len(sent_ids) < len(rows) or len(rows) < self._settings.outbox_batch_size:
                return total

    async def _follow_broker(self) -> None:
        """Ask (at most every `broker_check_interval_s`) which broker incarnation answers."""
        now = time.monotonic()
        if now - self._broker_checked_at < self._settings.broker_check_interval_s:
            return
        self._broker_checked_at = now
        try:
            cluster_id = await broker_incarnation(self._producer.client)
        except KafkaError as error:
            log.info("broker incarnation unknown (%s); publishing will retry", error)
            return
        if cluster_id is not None and cluster_id != self._incarnation:
            await self._adopt(cluster_id)

    async def _adopt(self, cluster_id: str) -> None:
        """Publish every kept row again if the broker is not the one they were sent to.

        Rows go back to pending in id order before anything new is claimed, so that the
        new broker receives each aggregate's events in their original order.
        """
        async with self._sessions() as session:
            known = await session.get(BrokerIncarnation, _INCARNATION_ROW)
        if known is None or known.cluster_id != cluster_id:
            if self._on_new_broker is not None:
                await self._on_new_broker()
            replayed = await self._return_sent_rows(cluster_id)
            async with transaction(self._sessions) as session:
                await session.merge(BrokerIncarnation(name=_INCARNATION_ROW, cluster_id=cluster_id))
            self._metrics.outbox_replayed.inc(replayed)
            log.log(
                logging.WARNING if replayed else logging.INFO,
                "broker incarnation %s (was %s): publishing %d kept rows again",
                cluster_id,
                known.cluster_id if known else "unknown",
                replayed,
            )
        self._incarnation = cluster_id

    async def _return_sent_rows(self, cluster_id: str) -> int:
        """Rows sent within the retention window, and only those: an older row is due for the
        purge, and the inbox may have forgotten its id, so publishing it again could apply it
        twice (a database from before retention existed holds its whole history)."""
        returned, after = 0, 0
        kept_since = utcnow() - timedelta(seconds=self._settings.outbox_retention_s)
        while True:
            async with transaction(self._sessions) as session:
                # Resuming after the last id keeps each batch as cheap as the first.
                ids = list(
                    (
                        await session.exec(
                            select(OutboxMessage.id)
                            .where(col(OutboxMessage.id) > after)
                            .where(col(OutboxMessage.sent_at) >= kept_since)
                            .where(
                                or_(
                                    col(OutboxMessage.sent_incarnation).is_(None),
                                    col(OutboxMessage.sent_incarnation) != cluster_id,
                                )
                            )
                            .order_by(col(OutboxMessage.id))
                            .limit(self._settings.retention_purge_batch)
                        )
                    ).all()
                )
                if not ids:
                    return returned
                await session.exec(
                    update(OutboxMessage)
                    .where(col(OutboxMessage.id).in_(ids))
                    .values(
                        sent_at=None, sent_incarnation=None, claimed_by=None, claimed_until=None
                    )
                )
            returned += len(ids)
            after = max(id_ for id_ in ids if id_ is not None)

    async def _release_own_claims(self) -> None:
        """A restarted relay takes back at once what its previous life had claimed."""
        async with transaction(self._sessions) as session:
            await session.exec(
                update(OutboxMessage)
                .where(OutboxMessage.claimed_by == self.relay_id)  # type: ignore[arg-type]
                .where(OutboxMessage.sent_at.is_(None))  # type: ignore[union-attr]
                .values(claimed_until=None, claimed_by=None)
            )

    async def _claim(self) -> list[ClaimedRecord]:
        now = utcnow()
        async with transaction(self._sessions) as session:
            query = (
                select(*(getattr(OutboxMessage, name) for name in ClaimedRecord._fields))
                .where(OutboxMessage.sent_at.is_(None))  # type: ignore[union-attr]
                .where(
                    or_(
                        OutboxMessage.claimed_until.is_(None),  # type: ignore[union-attr]
                        col(OutboxMessage.claimed_until) < now,
                    )
                )
                .order_by(col(OutboxMessage.id))
                .limit(self._settings.outbox_batch_size)
                .with_for_update(skip_locked=True)
            )
            claimed = [ClaimedRecord(*row) for row in (await session.exec(query)).all()]
            if not claimed:
                return []
            await session.exec(
                update(OutboxMessage)
                .where(col(OutboxMessage.id).in_([record.id for record in claimed]))
                .values(claimed_by=self.relay_id, claimed_until=now + self._lease)
            )
            return claimed

    async def _publish(self, rows: Sequence[ClaimedRecord]) -> list[int]:
        """Send the batch in order and await the acks; stop at the first failure."""
        prefix = self._settings.kafka_topic_prefix
        pending: list[tuple[ClaimedRecord, asyncio.Future[Any]]] = []
        error: Exception | None = None
        for row in rows:
            try:
                pending.append((row, await self._send(row, f"{prefix}{row.topic}")))
            except Exception as send_error:
                error = send_error
                break
        sent: list[int] = []
        for row, future in pending:
            try:
                await future
            except Exception as ack_error:
                error = ack_error
                break
            sent.append(row.id)
            self._metrics.outbox_published.labels(row.topic).inc()
            if self._after_publish is not None:
                self._after_publish(row)
        if error is not None:
            await self._record_failure([row for row in rows if row.id not in sent], error)
        return sent

    async def _send(self, row: ClaimedRecord, topic: str) -> asyncio.Future[Any]:
        """Queue one record under a producer span that continues the stored trace."""
        with span_from_traceparent(
            f"publish {row.topic}",
            row.traceparent,
            kind=SpanKind.PRODUCER,
            attributes={"messaging.system": "kafka", "messaging.destination.name": topic},
        ):
            headers = [
                (name, text.encode())
                for name, text in json.loads(row.headers)
                if name != TRACEPARENT_HEADER
            ]
            traceparent = current_traceparent()
            if traceparent:
                headers.append((TRACEPARENT_HEADER, traceparent.encode()))
            future: asyncio.Future[Any] = await self._producer.send(
                topic, value=row.value, key=row.key.encode(), headers=headers
            )
            return future

    async def _record_failure(self, rows: Sequence[ClaimedRecord], error: Exception) -> None:
        self._metrics.outbox_publish_failures.inc()
        log.warning("publish failed (%s); %d rows will be retried", error, len(rows))
        ids = [row.id for row in rows]
        async with transaction(self._sessions) as session:
            await session.exec(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids))  # type: ignore[union-attr]
                .values(
                    claimed_until=None,
                    claimed_by=None,
                    attempts=OutboxMessage.attempts + 1,
                    last_error=f"{type(error).__name__}: {error}"[:2000],
                )
            )
        # A broker that went away may come back as a new incarnation: ask before the next try.
        self._broker_checked_at = -float("inf")
        await asyncio.sleep(min(5.0, self._settings.outbox_poll_interval_s))

    async def _mark_sent(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        async with transaction(self._sessions) as session:
            await session.exec(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(ids))  # type: ignore[union-attr]
                .values(sent_at=utcnow(), claimed_until=None, sent_incarnation=self._incarnation)
            )


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


def _fault_hook_from(settings: CommonSettings) -> Callable[[ClaimedRecord], None] | None:
    """Fault injection (a relay crash between publish and mark-sent): die after the broker acked
    and before the row is marked sent."""
    every = settings.fault_relay_exit_after_publish_every
    if every <= 0:
        return None
    published = 0

    def exit_every_nth(_row: ClaimedRecord) -> None:
        nonlocal published
        published += 1
        if published % every == 0:
            os._exit(9)

    return exit_every_nth
