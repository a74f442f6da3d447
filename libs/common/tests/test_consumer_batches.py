"""The runner's fetched batches: every partition of a fetch in one transaction, and a failing
event never costing the others of its fetch (no broker needed: the fetch is handed in)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aiokafka import ConsumerRecord, TopicPartition
from bali_common.db import create_engine, create_session_factory, create_tables, table_of
from bali_common.events import STREAM_TOPICS, CloudEvent, Stream
from bali_common.messaging.consumer import ConsumerRunner
from bali_common.messaging.deadletters import DeadLetter
from bali_common.messaging.handlers import EventHandlers
from bali_common.messaging.inbox import InboxEntry
from bali_common.metrics import ServiceMetrics
from bali_common.runtime import PLUMBING_MODELS
from bali_common.settings import CommonSettings
from probe_service import ProbeApplied, ProbeCrash, ProbeRecorded
from sqlalchemy import insert
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

TOPIC = STREAM_TOPICS[Stream.activities].name


def _records(partition: int, probe_ids: Sequence[str]) -> list[ConsumerRecord[bytes, bytes]]:
    records: list[ConsumerRecord[bytes, bytes]] = []
    for offset, probe_id in enumerate(probe_ids):
        event = CloudEvent.of(ProbeRecorded(probe_id=probe_id), source="/t", subject=probe_id)
        value = event.kafka_value()
        records.append(
            ConsumerRecord(
                topic=TOPIC,
                partition=partition,
                offset=offset,
                timestamp=0,
                timestamp_type=0,
                key=event.kafka_key(),
                value=value,
                checksum=None,
                serialized_key_size=len(event.kafka_key()),
                serialized_value_size=len(value),
                headers=event.kafka_headers(),
            )
        )
    return records


async def test_a_failing_event_costs_neither_its_partition_nor_the_others_of_the_fetch(
    tmp_path: Path,
) -> None:
    settings = CommonSettings(
        service_name="batches",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'b.db'}",
        consumer_max_attempts=2,
        consumer_retry_backoff_s=0.0,
    )
    engine = create_engine(settings.resolved_database_url())
    await create_tables(engine, [*PLUMBING_MODELS, ProbeApplied])
    sessions = create_session_factory(engine)
    handlers = EventHandlers()

    @handlers.on_batch(ProbeRecorded)
    async def apply(
        session: AsyncSession, events: Sequence[tuple[CloudEvent, ProbeRecorded]]
    ) -> None:
        if any(p.probe_id == "poison" for _, p in events):
            raise ProbeCrash("poison")
        connection = await session.connection()
        await connection.execute(
            insert(table_of(ProbeApplied)), [{"probe_id": p.probe_id} for _, p in events]
        )

    runner = ConsumerRunner(
        settings=settings,
        session_factory=sessions,
        group=handlers.consumer_group("batches.applier"),
        metrics=ServiceMetrics("batches"),
    )
    fetch = {
        TopicPartition(TOPIC, 0): _records(0, ["a-1", "poison", "a-2"]),
        TopicPartition(TOPIC, 1): _records(1, ["b-1", "b-2", "b-3"]),
    }
    await runner._process_fetch(fetch)
    # Delivered again, as after a crash before the offset commit: the inbox skips it all.
    await runner._process_fetch(fetch)
    async with sessions() as session:
        applied = list((await session.exec(select(ProbeApplied.probe_id))).all())
        inbox = list((await session.exec(select(InboxEntry.event_id))).all())
        letters = list((await session.exec(select(DeadLetter))).all())
    await engine.dispose()
    assert sorted(applied) == ["a-1", "a-2", "b-1", "b-2", "b-3"]
    assert len(inbox) == 5
    assert [(letter.partition, letter.offset, letter.attempts) for letter in letters] == [(0, 1, 2)]
