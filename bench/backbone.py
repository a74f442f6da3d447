"""Throughput of the exactly-once backbone against raw aiokafka, on one embedded broker.

Backbone: N events committed to the outbox, then timed from relay start until
the consumer runner has applied all N (each apply = one DB transaction with
its inbox row). Raw: the same N records produced with acks=all and consumed by
a group with manual commits, timed the same way. Run: `make bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from uuid import uuid4

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from bali_common.db import create_engine, create_session_factory, create_tables, transaction
from bali_common.events import STREAM_TOPICS, CloudEvent, EventPayload, Stream, event_type
from bali_common.messaging.consumer import ConsumerRunner
from bali_common.messaging.deadletters import DeadLetter
from bali_common.messaging.handlers import EventHandlers
from bali_common.messaging.inbox import InboxEntry
from bali_common.messaging.kafka import create_producer, ensure_topics
from bali_common.messaging.outbox import (
    SIGNAL_INFO_KEY,
    SOURCE_INFO_KEY,
    OutboxMessage,
    OutboxRelay,
    OutboxSignal,
    outbox_backlog,
    stage_event,
)
from bali_common.metrics import ServiceMetrics
from bali_common.settings import CommonSettings
from bali_devkit.broker import EmbeddedBroker
from sqlmodel import Field, SQLModel, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

FAST = {
    "kafka_session_timeout_ms": 6000,
    "kafka_heartbeat_interval_ms": 300,
    "kafka_rebalance_timeout_ms": 3000,
    "kafka_fetch_max_wait_ms": 10,
}


@event_type("bench.measured", stream=Stream.activities)
class BenchMeasured(EventPayload):
    """A benchmark event of about 300 bytes."""

    sequence: int
    padding: str


class BenchApplied(SQLModel, table=True):
    __tablename__ = "bench_applied"
    sequence: int = Field(primary_key=True)


def payload(sequence: int) -> BenchMeasured:
    return BenchMeasured(sequence=sequence, padding="x" * 200)


async def run_backbone(bootstrap: str, count: int, workdir: Path) -> float:
    settings = CommonSettings(
        service_name="bench",
        kafka_bootstrap_servers=bootstrap,
        kafka_topic_prefix=f"b{uuid4().hex[:8]}.",
        database_url=f"sqlite+aiosqlite:///{workdir / f'{uuid4().hex}.db'}",
        outbox_batch_size=500,
        **FAST,  # type: ignore[arg-type]
    )
    await ensure_topics(settings)
    engine = create_engine(settings.resolved_database_url())
    tables = [OutboxMessage, InboxEntry, DeadLetter, BenchApplied]
    await create_tables(engine, tables)
    sessions = create_session_factory(engine)
    signal = OutboxSignal()
    sessions.configure(info={SIGNAL_INFO_KEY: signal, SOURCE_INFO_KEY: "/bali/bench"})
    for start in range(0, count, 500):
        async with transaction(sessions) as session:
            for sequence in range(start, min(count, start + 500)):
                stage_event(session, payload(sequence), subject=f"agg-{sequence % 100}")

    handlers = EventHandlers()

    @handlers.on(BenchMeasured)
    async def apply(session: AsyncSession, _event: CloudEvent, data: BenchMeasured) -> None:
        session.add(BenchApplied(sequence=data.sequence))

    metrics = ServiceMetrics("bench")
    runner = ConsumerRunner(
        settings=settings,
        session_factory=sessions,
        group=handlers.consumer_group("bench"),
        metrics=metrics,
    )
    await runner.start()
    await runner.ready.wait()
    producer = create_producer(settings)
    await producer.start()
    relay = OutboxRelay(
        settings=settings,
        session_factory=sessions,
        producer=producer,
        signal=signal,
        metrics=metrics,
    )
    started = time.perf_counter()
    relay_task = asyncio.create_task(relay.run())
    while await _applied(sessions) < count:  # noqa: ASYNC110 - polls a database, not an event
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - started
    assert await outbox_backlog(sessions) == 0
    relay_task.cancel()
    await runner.stop()
    await producer.stop()
    await engine.dispose()
    return count / elapsed


async def _applied(sessions: object) -> int:
    async with sessions() as session:  # type: ignore[operator]
        return int((await session.exec(select(func.count()).select_from(BenchApplied))).one())


async def run_raw(bootstrap: str, count: int) -> float:
    topic = STREAM_TOPICS[Stream.activities].qualified(f"r{uuid4().hex[:8]}.")
    settings = CommonSettings(kafka_bootstrap_servers=bootstrap, **FAST)  # type: ignore[arg-type]
    await ensure_topics(
        settings.model_copy(update={"kafka_topic_prefix": topic.removesuffix("bali.activities")})
    )
    records = [
        CloudEvent.of(payload(n), source="/bali/bench", subject=f"agg-{n % 100}")
        for n in range(count)
    ]
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"raw-{uuid4().hex[:6]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=10,
        session_timeout_ms=6000,
        heartbeat_interval_ms=300,
        rebalance_timeout_ms=3000,
    )
    await consumer.start()
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=100)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await producer.start()
    started = time.perf_counter()

    async def produce() -> None:
        futures = [
            await producer.send(
                topic, value=r.kafka_value(), key=r.kafka_key(), headers=r.kafka_headers()
            )
            for r in records
        ]
        await asyncio.gather(*futures)

    producing = asyncio.create_task(produce())
    consumed = 0
    while consumed < count:
        batches = await consumer.getmany(timeout_ms=200, max_records=500)
        consumed += sum(len(b) for b in batches.values())
        if batches:
            await consumer.commit()
    elapsed = time.perf_counter() - started
    await producing
    await producer.stop()
    await consumer.stop()
    return count / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as workdir:
        rows = []
        for run in range(1, args.runs + 1):
            raw = await run_raw(broker.bootstrap_servers, args.events)
            backbone = await run_backbone(broker.bootstrap_servers, args.events, Path(workdir))
            rows.append((raw, backbone))
            print(
                f"run {run}: raw {raw:,.0f} ev/s, backbone {backbone:,.0f} ev/s, "
                f"ratio {backbone / raw:.2f}",
                flush=True,
            )
    raw_median = statistics.median(r for r, _ in rows)
    backbone_median = statistics.median(b for _, b in rows)
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    print(f"\nmachine: {machine}, Python {platform.python_version()}")
    print(f"events per run: {args.events}, runs: {args.runs}")
    print(f"median raw aiokafka produce+consume: {raw_median:,.0f} events/s")
    print(f"median outbox relay -> broker -> consumer with inbox: {backbone_median:,.0f} events/s")
    print(f"ratio backbone/raw: {backbone_median / raw_median:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
