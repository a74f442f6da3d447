"""Replay: read the group's topics from offset 0 without a group and apply them.

An event is applied once however often it was published (the relay may publish a row
twice): its id is remembered and written to the shadow inbox, as the consumer runner
does.

The shadow tables start empty, so the first pass up to the high-water marks is folded:
each projection's `fold` keeps only the final state per aggregate in memory, and
`write_folded` writes every head, tally and inbox row once, with plain INSERTs, in one
transaction. Applying batch by batch would read and rewrite the same heads and tally
rows over and over; only their final values matter.

After that (the catch-up, a few events) and whenever the fold cannot be written, events
are applied in batches onto the tables: a batch is one transaction; if it fails, its
events are applied one by one and an event no projection can apply is skipped and
counted, as the live consumer would have dead-lettered it. A fold that cannot be written
holds such an event somewhere; the run then replays again batch by batch (`rewind`),
which finds it and leaves the rest applied exactly as the live consumer did.
"""

from __future__ import annotations

import asyncio
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

from bali_reporting.projections.base import Applied, Fold, Projection, execute_many, insert_fresh
from bali_reporting.rebuild.shadow import ShadowStore

log = logging.getLogger(__name__)

#: Events folded between two turns of the event loop (about 10-50 ms of work).
_FOLD_SLICE = 200

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
class _Folding:
    """The first pass's state: each projection's fold and the inbox rows to write."""

    folds: list[tuple[Projection, Fold]]
    inbox: list[tuple[str, str, str, int, int]] = field(default_factory=list)
    broken: bool = False
    _routes: dict[type[EventPayload], list[Fold]] = field(default_factory=dict)

    def route(self, payload: EventPayload) -> list[Fold]:
        """The folds taking this payload's class (`accepts` depends on the class alone)."""
        route = self._routes.get(type(payload))
        if route is None:
            route = [fold for projection, fold in self.folds if projection.accepts(payload)]
            self._routes[type(payload)] = route
        return route


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
    _folding: _Folding | None = None

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
        self._folding = _Folding([(p, p.fold()) for p in self.projections])

    async def write_folded(self, on_progress: Callable[[], object] = lambda: None) -> bool:
        """Write the folded first pass into the (empty) shadow tables, in one transaction;
        from here on, events are applied batch by batch. False when the fold could not be
        written: the shadow may hold part of it, so clear it and `rewind`."""
        folding, self._folding = self._folding, None
        if folding is None:
            return True
        if folding.broken:
            return False
        processed_at = utcnow()
        try:
            async with self.shadow.transaction() as session:
                for projection, fold in folding.folds:
                    await fold.write(session)
                    on_progress()
                    log.debug("rebuild wrote the fold of %s", projection.name)
                await insert_fresh(
                    session,
                    table_of(InboxEntry),
                    (
                        {
                            "consumer_group": self.group.name,
                            "event_id": event_id,
                            "event_type": event_type,
                            "topic": topic,
                            "partition": partition,
                            "offset": offset,
                            "processed_at": processed_at,
                        }
                        for event_id, event_type, topic, partition, offset in sorted(folding.inbox)
                    ),
                )
        except Exception:
            log.exception("rebuild could not write its fold; replaying batch by batch")
            return False
        return True

    async def rewind(self) -> None:
        """Start over from offset 0, applying batch by batch (after a fold that failed)."""
        assert self._consumer is not None
        partitions = self.partitions
        await self._consumer.seek_to_beginning(*partitions)
        self.positions = dict.fromkeys(partitions, 0)
        self.counts = ReplayCounts()
        self._seen.clear()
        self._folding = None

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
        folding = self._folding
        if folding is not None:
            # Each event is folded as soon as it is parsed: a batch of parsed events kept
            # alive together would outlive two garbage collections and fill the oldest
            # generation, whose full collections then dominate the replay.
            for count, record in enumerate(records, start=1):
                if (one := self._prepare(record)) is not None:
                    self._fold(folding, one)
                if count % _FOLD_SLICE == 0:
                    # Nothing else awaits while folding: let the live consumer (its
                    # heartbeats, its group) and the requests served meanwhile run.
                    await asyncio.sleep(0)
            return
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

    def _fold(self, folding: _Folding, one: _Event) -> None:
        if folding.broken:
            return
        applied: list[Applied] = [(one.event, one.payload)]
        try:
            for fold in folding.route(one.payload):
                fold.add(applied)
        except Exception:
            log.exception("rebuild could not fold %s %s", one.event.type, one.event.id)
            folding.broken = True
            return
        folding.inbox.append(
            (str(one.event.id), one.event.type, one.topic, one.record.partition, one.record.offset)
        )

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
