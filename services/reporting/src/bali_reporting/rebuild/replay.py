"""Replay: read the group's topics from offset 0 without a group and apply them in batches.

An event is applied once however often it was published (the relay may publish a row
twice): its id is remembered and written to the shadow inbox, as the consumer runner
does. A batch is one transaction; if it fails, its events are applied one by one and
an event no projection can apply is skipped and counted, as the live consumer would
have dead-lettered it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from bali_common.db import table_of, utcnow
from bali_common.events.envelope import CloudEvent, InvalidEvent
from bali_common.events.registry import EventPayload
from bali_common.events.topics import STREAM_TOPICS
from bali_common.messaging.handlers import ConsumerGroup
from bali_common.messaging.inbox import InboxEntry
from bali_common.messaging.kafka import connection_options
from bali_common.settings import CommonSettings
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_reporting.projections.base import Applied, Projection, execute_many
from bali_reporting.rebuild.shadow import ShadowStore

log = logging.getLogger(__name__)

Positions = dict[TopicPartition, int]


@dataclass
class ReplayCounts:
    read: int = 0
    applied: int = 0
    duplicates: int = 0
    skipped: int = 0
    failed: int = 0


@dataclass(frozen=True)
class _Event:
    record: ConsumerRecord[bytes, bytes]
    topic: str
    event: CloudEvent
    payload: EventPayload


@dataclass
class Replayer:
    """Applies records of the group's topics to the shadow store, tracking positions."""

    settings: CommonSettings
    group: ConsumerGroup
    projections: Sequence[Projection]
    shadow: ShadowStore
    batch_events: int
    counts: ReplayCounts = field(default_factory=ReplayCounts)
    positions: Positions = field(default_factory=dict)
    _seen: set[str] = field(default_factory=set)
    _consumer: AIOKafkaConsumer | None = None

    @property
    def partitions(self) -> list[TopicPartition]:
        prefix = self.settings.kafka_topic_prefix
        return [
            TopicPartition(STREAM_TOPICS[stream].qualified(prefix), partition)
            for stream in self.group.streams
            for partition in range(STREAM_TOPICS[stream].partitions)
        ]

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            client_id=f"{self.settings.service_name}-rebuild",
            enable_auto_commit=False,
            # The embedded broker waits its whole fetch wait: keep it short.
            fetch_max_wait_ms=self.settings.kafka_fetch_max_wait_ms,
            max_partition_fetch_bytes=4 * 1_048_576,
            request_timeout_ms=self.settings.kafka_request_timeout_ms,
            **connection_options(self.settings),
        )
        # Kept before it connects: `stop` closes it however far starting got (a broker
        # error, or the service stopping while it seeks), so no connection is left behind.
        self._consumer = consumer
        await consumer.start()
        partitions = self.partitions
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        self.positions = dict.fromkeys(partitions, 0)

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    def highwater(self) -> Positions:
        """High-water marks learnt from fetch responses so far (tansu's ListOffsets answers
        wrongly, so these are the only end offsets trusted)."""
        assert self._consumer is not None
        marks = {tp: self._consumer.highwater(tp) for tp in self.positions}
        return {tp: mark for tp, mark in marks.items() if mark is not None}

    def remaining(self, targets: Mapping[TopicPartition, int]) -> int:
        return sum(max(0, target - self.positions.get(tp, 0)) for tp, target in targets.items())

    async def read_until(
        self, targets: Callable[[], Positions | None], on_progress: Callable[[], object]
    ) -> None:
        """Read and apply until every partition has reached its target; `targets` answers
        None while some target is still unknown."""
        assert self._consumer is not None
        while True:
            wanted = targets()
            if wanted is not None and self.remaining(wanted) == 0:
                return
            batches = await self._fetch()
            records = [r for tp in sorted(batches) for r in batches[tp]]
            if records:
                await self._apply(records)
                for tp, part in batches.items():
                    self.positions[tp] = part[-1].offset + 1
            on_progress()

    async def _fetch(self) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        """Up to a batch of records: fetches are topped up until the batch is full or a fetch
        brings nothing (the broker hands out a few record batches per fetch; a transaction
        per fetch would be many small ones)."""
        assert self._consumer is not None
        batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = dict(
            await self._consumer.getmany(timeout_ms=200, max_records=self.batch_events)
        )
        total = sum(len(records) for records in batches.values())
        while 0 < total < self.batch_events:
            more = await self._consumer.getmany(
                timeout_ms=50, max_records=self.batch_events - total
            )
            if not more:
                break
            for tp, records in more.items():
                batches.setdefault(tp, []).extend(records)
                total += len(records)
        return batches

    async def _apply(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        self.counts.read += len(records)
        events = [e for record in records if (e := self._prepare(record)) is not None]
        if not events:
            return
        try:
            async with self.shadow.transaction() as session:
                await self._apply_in(session, events)
        except Exception as error:
            log.info("rebuild batch failed (%s); applying its events one by one", error)
            for one in events:
                try:
                    async with self.shadow.transaction() as session:
                        await self._apply_in(session, [one])
                except Exception:
                    log.exception("rebuild could not apply %s %s", one.event.type, one.event.id)
                    self._seen.discard(str(one.event.id))
                    self.counts.applied -= 1
                    self.counts.failed += 1

    def _prepare(self, record: ConsumerRecord[bytes, bytes]) -> _Event | None:
        """Parse and route like the consumer runner; invalid or unrouted records are skipped."""
        try:
            cloud_event = CloudEvent.from_kafka(record.headers, record.value)
            if not self.group.handles_type(cloud_event.type) or not self.group.handlers_for(
                cloud_event.type, cloud_event.version
            ):
                self.counts.skipped += 1
                return None
            payload = cloud_event.payload()
        except InvalidEvent:
            self.counts.skipped += 1
            return None
        event_id = str(cloud_event.id)
        if event_id in self._seen:
            self.counts.duplicates += 1
            return None
        self._seen.add(event_id)
        self.counts.applied += 1
        prefix = self.settings.kafka_topic_prefix
        topic = (
            record.topic[len(prefix) :]
            if prefix and record.topic.startswith(prefix)
            else record.topic
        )
        return _Event(record, topic, cloud_event, payload)

    async def _apply_in(self, session: AsyncSession, events: Sequence[_Event]) -> None:
        applied: list[Applied] = [(e.event, e.payload) for e in events]
        for projection in self.projections:
            mine = [item for item in applied if projection.accepts(item[1])]
            if mine:
                await projection.apply(session, mine)
        processed_at = utcnow()
        inbox = [
            {
                "consumer_group": self.group.name,
                "event_id": str(e.event.id),
                "event_type": e.event.type,
                "topic": e.topic,
                "partition": e.record.partition,
                "offset": e.record.offset,
                "processed_at": processed_at,
            }
            for e in events
        ]
        await execute_many(session, table_of(InboxEntry).insert(), inbox)
