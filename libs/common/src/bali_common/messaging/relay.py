"""The outbox relay: publishes committed outbox rows in order, and again onto a new broker.

See `outbox.py` for the rows it publishes. Sent rows are kept for a retention window; each
broker start has an incarnation (the cluster id in its metadata), and a relay that finds a
new one publishes its kept rows again, in order, before anything new: the consumers' inbox
makes the repeats harmless. On Apache Kafka the incarnation never changes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from opentelemetry.trace import SpanKind
from sqlalchemy import or_, update
from sqlalchemy import select as core_select
from sqlmodel import col, select

from bali_common.db import SessionFactory, table_of, transaction, utcnow
from bali_common.events.envelope import TRACEPARENT_HEADER
from bali_common.messaging.kafka import broker_incarnation
from bali_common.messaging.outbox import (
    BrokerIncarnation,
    ClaimedRecord,
    OutboxMessage,
    OutboxSignal,
)
from bali_common.metrics import ServiceMetrics
from bali_common.settings import CommonSettings
from bali_common.telemetry import current_traceparent, span_from_traceparent, spans_exported

log = logging.getLogger(__name__)

_INCARNATION_ROW = "broker"


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
        """Core statements on the session's connection: the rows are plain values, and the
        ORM's compile and result layers cost more per claimed row than the database does."""
        now = utcnow()
        async with transaction(self._sessions) as session:
            connection = await session.connection()
            query = (
                core_select(*(_OUTBOX.c[name] for name in ClaimedRecord._fields))
                .where(_OUTBOX.c.sent_at.is_(None))
                .where(or_(_OUTBOX.c.claimed_until.is_(None), _OUTBOX.c.claimed_until < now))
                .order_by(_OUTBOX.c.id)
                .limit(self._settings.outbox_batch_size)
                .with_for_update(skip_locked=True)
            )
            claimed = [ClaimedRecord(*row) for row in await connection.execute(query)]
            if not claimed:
                return []
            await connection.execute(
                update(_OUTBOX)
                .where(_OUTBOX.c.id.in_([record.id for record in claimed]))
                .values(claimed_by=self.relay_id, claimed_until=now + self._lease)
            )
            return claimed

    async def _publish(self, rows: Sequence[ClaimedRecord]) -> list[int]:
        """Send the batch in order and await the acks; stop at the first failure."""
        prefix = self._settings.kafka_topic_prefix
        traced = spans_exported()
        pending: list[tuple[ClaimedRecord, asyncio.Future[Any]]] = []
        error: Exception | None = None
        for row in rows:
            try:
                pending.append((row, await self._send(row, f"{prefix}{row.topic}", traced)))
            except Exception as send_error:
                error = send_error
                break
        sent: list[int] = []
        published: Counter[str] = Counter()
        for row, future in pending:
            try:
                await future
            except Exception as ack_error:
                error = ack_error
                break
            sent.append(row.id)
            published[row.topic] += 1
            if self._after_publish is not None:
                self._after_publish(row)
        for topic, count in published.items():
            self._metrics.outbox_published.labels(topic).inc(count)
        if error is not None:
            await self._record_failure([row for row in rows if row.id not in sent], error)
        return sent

    async def _send(self, row: ClaimedRecord, topic: str, traced: bool) -> asyncio.Future[Any]:
        """Queue one record under a producer span that continues the stored trace.

        While no span is recorded, that span would be a non-recording one in the stored trace:
        the record carries the stored traceparent itself, and the span, a few microseconds a
        record, is skipped.
        """
        headers = [
            (name, text.encode())
            for name, text in json.loads(row.headers)
            if name != TRACEPARENT_HEADER
        ]
        if not traced:
            if row.traceparent:
                headers.append((TRACEPARENT_HEADER, row.traceparent.encode()))
            queued: asyncio.Future[Any] = await self._producer.send(
                topic, value=row.value, key=row.key.encode(), headers=headers
            )
            return queued
        with span_from_traceparent(
            f"publish {row.topic}",
            row.traceparent,
            kind=SpanKind.PRODUCER,
            attributes={"messaging.system": "kafka", "messaging.destination.name": topic},
        ):
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
            connection = await session.connection()
            await connection.execute(
                update(_OUTBOX)
                .where(_OUTBOX.c.id.in_(ids))
                .values(sent_at=utcnow(), claimed_until=None, sent_incarnation=self._incarnation)
            )


_OUTBOX = table_of(OutboxMessage)


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
