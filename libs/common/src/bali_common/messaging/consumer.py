"""Consumer runner: applies each event once, then commits its offset; poison goes to dead letters.

Kafka delivers at least once. Each event is applied and its id written to the
inbox in one database transaction, and the offset is committed only after
that transaction, so a redelivery finds the id and is skipped.

Offset commits have a timeout. A consumer whose commits or fetches keep failing (a broker
that restarted and no longer knows the group's generation, say) is replaced by a new one,
which rejoins the group and resumes from the committed offsets, or from the earliest on a
new broker: its inbox makes whatever comes again harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from opentelemetry.trace import SpanKind
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_common.db import SessionFactory, transaction
from bali_common.events.envelope import CloudEvent, InvalidEvent
from bali_common.events.registry import EventPayload
from bali_common.events.topics import STREAM_TOPICS
from bali_common.messaging.deadletters import already_dead_lettered, record_dead_letter
from bali_common.messaging.handlers import ConsumerGroup
from bali_common.messaging.inbox import (
    AppliedEvent,
    already_applied,
    applied_among,
    record_applied,
)
from bali_common.messaging.kafka import create_consumer
from bali_common.metrics import ServiceMetrics
from bali_common.settings import CommonSettings
from bali_common.telemetry import batch_span, span_from_traceparent

log = logging.getLogger(__name__)

AfterCommitHook = Callable[[CloudEvent], None]


@dataclass(slots=True)
class _Delivery:
    record: ConsumerRecord[bytes, bytes]
    topic: str
    event: CloudEvent
    payload: EventPayload
    #: Indices of the group's registrations that take this event.
    route: tuple[int, ...]
    #: `str(event.id)`, formatted once: the inbox lookup, its row and the logs all need it.
    event_id: str


class ConsumerRunner:
    def __init__(
        self,
        *,
        settings: CommonSettings,
        session_factory: SessionFactory,
        group: ConsumerGroup,
        metrics: ServiceMetrics,
        after_commit: AfterCommitHook | None = None,
    ) -> None:
        self._settings = settings
        self._sessions = session_factory
        self._consumer_group = group
        self._metrics = metrics
        self._after_commit = after_commit or _fault_hook_from(settings)
        self._group = group.name
        self._prefix = settings.kafka_topic_prefix
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._processing = asyncio.Lock()
        self._positions: dict[TopicPartition, int] = {}  # applied, not yet committed
        self._consumed: dict[TopicPartition, int] = {}  # applied, for the lag gauge
        self._stopping = False
        self.ready = asyncio.Event()

    @property
    def group(self) -> str:
        return self._group

    async def start(self) -> None:
        self._consumer = await self._connect()
        self._task = asyncio.create_task(self._run(), name=f"consumer:{self._group}")

    async def _connect(self) -> AIOKafkaConsumer:
        consumer = create_consumer(self._settings, group_id=self._group)
        topics = [STREAM_TOPICS[s].qualified(self._prefix) for s in self._consumer_group.streams]
        consumer.subscribe(topics, listener=_CommitOnRevoke(self))
        await consumer.start()
        return consumer

    async def stop(self) -> None:
        """Graceful: finish the batch in hand, commit what was applied, leave the group."""
        self._stopping = True
        if self._task is not None:
            try:
                # The loop checks `_stopping` at least every fetch timeout; a batch in hand
                # finishes its transaction rather than being cancelled half-way.
                await asyncio.wait_for(asyncio.shield(self._task), self._bound())
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            except Exception:
                log.exception("[%s] consumer task had failed", self._group)
            self._task = None
        if self._consumer is not None:
            async with self._processing:
                await self._commit()
            await self._close(self._consumer)
            self._consumer = None

    def _bound(self) -> float:
        return self._settings.consumer_commit_timeout_s

    async def _close(self, consumer: AIOKafkaConsumer) -> None:
        """Leave the group; a broker that does not answer cannot hold the stop up."""
        try:
            await asyncio.wait_for(consumer.stop(), self._bound())
        except Exception as error:
            log.warning("[%s] consumer did not stop cleanly: %s", self._group, error)

    async def caught_up(self) -> bool:
        """Nothing in hand and every assigned partition read up to its high-water mark.

        The high-water mark comes from fetch responses, which run continuously, so a drain
        asks this repeatedly over a quiet period rather than once.
        """
        consumer = self._consumer
        if consumer is None:
            return True
        if self._processing.locked():
            return False
        for partition in consumer.assignment():
            highwater = consumer.highwater(partition)
            position = await self._applied_position(consumer, partition)
            if highwater is None or position is None or position < highwater:
                return False
        return True

    async def abandon(self) -> None:
        """Stop without committing offsets: what a crash leaves behind (used by fault tests)."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
        if self._consumer is not None:
            self._positions.clear()
            await self._consumer.stop()
            self._consumer = None

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            consumer = self._consumer
            assert consumer is not None
            try:
                batches = await consumer.getmany(timeout_ms=500, max_records=200)
            except KafkaError as error:
                log.warning("[%s] fetch failed: %s", self._group, error)
                failures = await self._count_failure(failures + 1)
                await asyncio.sleep(1)
                continue
            if consumer.assignment():
                self.ready.set()
            if not batches:
                await self._update_lag(consumer)
                continue
            async with self._processing:
                owned = consumer.assignment()
                mine = {tp: records for tp, records in batches.items() if tp in owned}
                await self._process_fetch(mine)
                for partition, records in mine.items():
                    self._positions[partition] = records[-1].offset + 1
                    self._consumed[partition] = records[-1].offset + 1
                committed = await self._commit()
            await self._update_lag(consumer)
            failures = 0 if committed else await self._count_failure(failures + 1)

    async def _count_failure(self, failures: int) -> int:
        """Failures in a row; at the limit the consumer is replaced and the count starts over."""
        if failures < self._settings.consumer_recreate_after_failures or self._stopping:
            return failures
        await self._replace_consumer(failures)
        return 0

    async def _replace_consumer(self, failures: int) -> None:
        old, self._consumer = self._consumer, None
        log.warning("[%s] %d failures in a row: replacing the consumer", self._group, failures)
        # Applied but uncommitted positions are dropped: their redelivery meets the inbox.
        self._positions.clear()
        self._forget_partitions(list(self._consumed))
        if old is not None:
            await self._close(old)
        self._metrics.consumer_restarts.labels(self._group).inc()
        delay = 0.2
        while not self._stopping:
            try:
                self._consumer = await self._connect()
                return
            except Exception as error:
                log.warning(
                    "[%s] reconnect failed (%s); retrying in %.1fs", self._group, error, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _process_fetch(
        self, batches: Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        """Apply a fetch's records in one transaction, every partition's together.

        A transaction costs a few statements and a commit whatever its size, and a fetch
        spread over six partitions used to pay them six times. On any failure each
        partition's batch is tried on its own, and within one that fails, one event at a
        time (`_process_batch`), so a failing event never holds the others back.
        """
        prepared = {
            partition: [d for r in records if (d := await self._prepare(partition, r)) is not None]
            for partition, records in batches.items()
        }
        if sum(1 for deliveries in prepared.values() if deliveries) > 1 and (
            await self._apply_together([d for ds in prepared.values() for d in ds])
        ):
            return
        for partition, deliveries in prepared.items():
            await self._process_batch(partition, deliveries)

    async def _process_batch(self, partition: TopicPartition, deliveries: list[_Delivery]) -> None:
        """Apply a partition's batch in one transaction; on any failure, one event at a time."""
        if len(deliveries) > 1 and await self._apply_together(deliveries):
            return
        for delivery in deliveries:
            await self._apply_with_retries(partition, delivery)

    async def _prepare(
        self, partition: TopicPartition, record: ConsumerRecord[bytes, bytes]
    ) -> _Delivery | None:
        """Parse and route a record; invalid ones go straight to dead letters (no retry helps)."""
        topic = self._catalogue_topic(record.topic)
        value = record.value
        if value is not None and len(value) > self._settings.consumer_max_event_bytes:
            await self._dead_letter(partition, record, topic, "event exceeds size limit", 0)
            return None
        try:
            cloud_event = CloudEvent.from_kafka(record.headers, value)
        except InvalidEvent as error:
            await self._dead_letter(partition, record, topic, f"invalid event: {error}", 0)
            return None
        if not self._consumer_group.handles_type(cloud_event.type):
            return None
        try:
            payload = cloud_event.payload()
        except InvalidEvent as error:
            await self._dead_letter(partition, record, topic, f"schema violation: {error}", 0)
            return None
        route = self._consumer_group.route_of(cloud_event.type, cloud_event.version)
        if not route:
            return None
        return _Delivery(record, topic, cloud_event, payload, route, str(cloud_event.id))

    async def _apply_together(self, deliveries: Sequence[_Delivery]) -> bool:
        """One transaction for the batch: effects and inbox rows commit or roll back together."""
        applied: list[_Delivery] = []
        try:
            async with transaction(self._sessions) as session:
                seen = set(
                    await applied_among(
                        session, group=self._group, event_ids=[d.event_id for d in deliveries]
                    )
                )
                for delivery in deliveries:
                    if delivery.event_id not in seen:
                        seen.add(delivery.event_id)
                        applied.append(delivery)
                await self._apply_in(session, applied)
        except Exception as error:
            log.info("[%s] batch failed (%s); applying one by one", self._group, error)
            return False
        self._record_outcome(applied, duplicates=len(deliveries) - len(applied))
        return True

    async def _apply_with_retries(self, partition: TopicPartition, delivery: _Delivery) -> None:
        attempts = self._settings.consumer_max_attempts
        last_error: Exception | None = None
        for attempt in range(1, attempts + 1):
            try:
                applied = await self._apply_once(delivery)
            except IntegrityError as error:
                # A twin delivery committed the inbox row first; the next try sees it.
                last_error = error
            except Exception as error:
                last_error = error
                log.warning(
                    "[%s] %s %s failed (attempt %d/%d): %s",
                    self._group,
                    delivery.event.type,
                    delivery.event_id,
                    attempt,
                    attempts,
                    error,
                )
            else:
                self._record_outcome([delivery] if applied else [], duplicates=0 if applied else 1)
                return
            if attempt < attempts:
                self._metrics.events_retried.labels(self._group).inc()
                await asyncio.sleep(self._settings.consumer_retry_backoff_s * 2 ** (attempt - 1))
        error_text = f"{type(last_error).__name__}: {last_error}"
        await self._dead_letter(partition, delivery.record, delivery.topic, error_text, attempts)

    async def _apply_once(self, delivery: _Delivery) -> bool:
        async with transaction(self._sessions) as session:
            if await already_applied(session, group=self._group, event_id=delivery.event_id):
                return False
            await self._apply_in(session, [delivery])
        return True

    async def _apply_in(self, session: AsyncSession, deliveries: Sequence[_Delivery]) -> None:
        """Each registration in order over the events it takes, then every inbox row in one
        INSERT: a batch costs one statement per handler's table, not one per event."""
        if not deliveries:
            return
        with self._span_for(deliveries):
            for index, registration in enumerate(self._consumer_group.registrations):
                taken = [d for d in deliveries if index in d.route]
                if not taken:
                    continue
                await registration.apply(session, [(d.event, d.payload) for d in taken])
            await record_applied(
                session,
                [
                    AppliedEvent(
                        self._group,
                        d.event_id,
                        d.event.type,
                        d.topic,
                        d.record.partition,
                        d.record.offset,
                    )
                    for d in deliveries
                ],
            )

    def _span_for(self, deliveries: Sequence[_Delivery]) -> AbstractContextManager[object]:
        """One consumer span: a child of the event's producer span for a single event, and
        for a batch a span linked to each event's (OpenTelemetry messaging conventions)."""
        attributes = {"messaging.system": "kafka", "messaging.consumer.group.name": self._group}
        if len(deliveries) == 1:
            (delivery,) = deliveries
            return span_from_traceparent(
                f"process {delivery.event.type}",
                delivery.event.traceparent,
                kind=SpanKind.CONSUMER,
                attributes={**attributes, "messaging.message.id": delivery.event_id},
            )
        return batch_span(
            f"process {self._group}",
            [d.event.traceparent for d in deliveries],
            kind=SpanKind.CONSUMER,
            attributes={**attributes, "messaging.batch.message_count": str(len(deliveries))},
        )

    def _record_outcome(self, applied: Sequence[_Delivery], *, duplicates: int) -> None:
        # One counter update per event type rather than per event: a label lookup each.
        for event_type, count in Counter(d.event.type for d in applied).items():
            self._metrics.events_applied.labels(self._group, event_type).inc(count)
        if duplicates:
            self._metrics.events_duplicate.labels(self._group).inc(duplicates)
        if self._after_commit is not None:
            for delivery in applied:
                self._after_commit(delivery.event)

    async def _dead_letter(
        self,
        partition: TopicPartition,
        record: ConsumerRecord[bytes, bytes],
        topic: str,
        error: str,
        attempts: int,
    ) -> None:
        log.error("[%s] dead-lettering %s@%d: %s", self._group, partition, record.offset, error)
        async with transaction(self._sessions) as session:
            if await already_dead_lettered(
                session,
                group=self._group,
                topic=topic,
                partition=record.partition,
                offset=record.offset,
            ):
                return
            record_dead_letter(
                session,
                group=self._group,
                topic=topic,
                partition=record.partition,
                offset=record.offset,
                key=record.key,
                headers=list(record.headers or ()),
                value=record.value,
                error=error,
                attempts=attempts,
            )
        self._metrics.events_dead_lettered.labels(self._group).inc()

    async def _commit(self, only: Sequence[TopicPartition] | None = None) -> bool:
        """Commit applied positions of partitions still ours; a lost one is merely redelivered.

        False when the commit failed or timed out (the positions stay, to be tried again).
        """
        consumer = self._consumer
        if consumer is None or not self._positions:
            return True
        owned = consumer.assignment()
        offsets = {
            tp: position
            for tp, position in self._positions.items()
            if tp in owned and (only is None or tp in only)
        }
        for tp in list(self._positions):
            if tp not in owned:
                del self._positions[tp]
        if not offsets:
            return True
        try:
            await asyncio.wait_for(consumer.commit(offsets), self._bound())
        except (CommitFailedError, IllegalStateError, KafkaError, TimeoutError) as error:
            log.warning(
                "[%s] offset commit failed (%s); inbox dedups redelivery",
                self._group,
                error or type(error).__name__,
            )
            return False
        for tp, position in offsets.items():
            if self._positions.get(tp) == position:
                del self._positions[tp]
        return True

    def _forget_partitions(self, partitions: Sequence[TopicPartition]) -> None:
        """Partitions no longer ours: their lag is another member's to report."""
        for tp in partitions:
            self._consumed.pop(tp, None)
            with contextlib.suppress(KeyError):
                self._metrics.consumer_lag.remove(self._group, tp.topic, str(tp.partition))

    async def _update_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Lag from the fetch high-water mark: tansu's ListOffsets(latest) answers wrongly.

        Every assigned partition gets a series, idle ones included, so that 0 means caught up
        rather than "not measured".
        """
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            consumed = await self._applied_position(consumer, tp)
            if highwater is None or consumed is None:
                continue
            self._metrics.consumer_lag.labels(self._group, tp.topic, str(tp.partition)).set(
                max(0, highwater - consumed)
            )

    async def _applied_position(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
        """The next offset to apply. Outside a batch that is the consumer's fetch position,
        which a partition nothing was applied from yet gets from the committed offset."""
        if tp not in self._consumed:
            try:
                self._consumed[tp] = await asyncio.wait_for(consumer.position(tp), 1.0)
            except Exception:
                return None
        return self._consumed[tp]

    def _catalogue_topic(self, topic: str) -> str:
        return (
            topic[len(self._prefix) :] if self._prefix and topic.startswith(self._prefix) else topic
        )


class _CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Before partitions move to another member, finish the batch in hand and commit it."""

    def __init__(self, runner: ConsumerRunner) -> None:
        self._runner = runner

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        async with self._runner._processing:
            await self._runner._commit(list(revoked))
        self._runner._forget_partitions(list(revoked))

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        return None


def _fault_hook_from(settings: CommonSettings) -> AfterCommitHook | None:
    """Fault injection (a consumer crash after its side effect): die after the DB commit and
    before the offset commit."""
    every = settings.fault_consumer_exit_after_commit_every
    if every <= 0:
        return None
    applied = 0

    def exit_every_nth(_event: CloudEvent) -> None:
        nonlocal applied
        applied += 1
        if applied % every == 0:
            os._exit(9)

    return exit_every_nth
