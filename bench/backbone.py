"""Throughput of the exactly-once backbone against two aiokafka baselines, on one embedded broker.

Backbone: N events committed to the outbox, then timed from relay start until the consumer
runner has applied all N (each fetch, all its partitions, in one transaction with its inbox
rows since 2026-11-29; before, each partition's records of a fetch in one); its handler is a
batch handler writing one INSERT per batch, the same effect's write (`--per-event-handler`: one
ORM object per event, the handler before 2026-11-29). Raw: the same N records produced with
acks=all and consumed by a group with manual commits, timed from the first send until the last
record is consumed. Same effect: raw plus the backbone's database writes, no outbox and no
inbox: per fetched partition batch, one transaction with one INSERT of the batch's rows (same
engine, same table), then the offset commit; timed from the first send until all N rows are in
the table. Each run measures all three, in that order; the load average is recorded with each
run. Run: `make bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from uuid import uuid4

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from bali_common.db import (
    create_engine,
    create_session_factory,
    create_tables,
    table_of,
    transaction,
)
from bali_common.events import STREAM_TOPICS, CloudEvent, EventPayload, Stream, event_type
from bali_common.messaging.consumer import ConsumerRunner
from bali_common.messaging.handlers import EventHandlers
from bali_common.messaging.kafka import create_consumer, create_producer, ensure_topics
from bali_common.messaging.outbox import (
    SIGNAL_INFO_KEY,
    SOURCE_INFO_KEY,
    OutboxSignal,
    outbox_backlog,
    stage_event,
)
from bali_common.messaging.relay import OutboxRelay
from bali_common.metrics import ServiceMetrics
from bali_common.runtime import PLUMBING_MODELS
from bali_common.settings import CommonSettings
from bali_devkit.broker import EmbeddedBroker
from sqlalchemy import insert
from sqlmodel import Field, SQLModel, func, select
from sqlmodel.ext.asyncio.session import AsyncSession
from support import load_average, machine, median, stop_cleanly_on_sigterm

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


async def run_backbone(
    bootstrap: str, count: int, workdir: Path, *, per_event: bool = False
) -> float:
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
    await create_tables(engine, [*PLUMBING_MODELS, BenchApplied])
    sessions = create_session_factory(engine)
    signal = OutboxSignal()
    sessions.configure(info={SIGNAL_INFO_KEY: signal, SOURCE_INFO_KEY: "/bali/bench"})
    for start in range(0, count, 500):
        async with transaction(sessions) as session:
            for sequence in range(start, min(count, start + 500)):
                stage_event(session, payload(sequence), subject=f"agg-{sequence % 100}")

    handlers = EventHandlers()
    if per_event:

        @handlers.on(BenchMeasured)
        async def apply(session: AsyncSession, _event: CloudEvent, data: BenchMeasured) -> None:
            session.add(BenchApplied(sequence=data.sequence))

    else:

        @handlers.on_batch(BenchMeasured)
        async def apply_batch(
            session: AsyncSession, events: Sequence[tuple[CloudEvent, BenchMeasured]]
        ) -> None:
            connection = await session.connection()
            await connection.execute(
                insert(table_of(BenchApplied)), [{"sequence": data.sequence} for _, data in events]
            )

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


async def _fresh_topic(bootstrap: str) -> str:
    """The activities topic under a new prefix, created with its catalogue partition count."""
    prefix = f"r{uuid4().hex[:8]}."
    settings = CommonSettings(kafka_bootstrap_servers=bootstrap, kafka_topic_prefix=prefix)
    await ensure_topics(settings)
    return STREAM_TOPICS[Stream.activities].qualified(prefix)


def _records(count: int) -> list[CloudEvent]:
    return [
        CloudEvent.of(payload(n), source="/bali/bench", subject=f"agg-{n % 100}")
        for n in range(count)
    ]


async def _produce(producer: AIOKafkaProducer, topic: str, records: list[CloudEvent]) -> None:
    futures = [
        await producer.send(
            topic, value=r.kafka_value(), key=r.kafka_key(), headers=r.kafka_headers()
        )
        for r in records
    ]
    await asyncio.gather(*futures)


async def run_raw(bootstrap: str, count: int) -> float:
    topic = await _fresh_topic(bootstrap)
    records = _records(count)
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
    producing = asyncio.create_task(_produce(producer, topic, records))
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


async def run_same_effect(bootstrap: str, count: int, workdir: Path) -> float:
    """Raw plus the backbone's writes: one INSERT per fetched partition batch, no outbox/inbox.

    Producer and consumer are configured as the backbone's (`create_producer`,
    `create_consumer`), and the consumer fetches as the runner does (up to 200 records, 500 ms).
    """
    topic = await _fresh_topic(bootstrap)
    settings = CommonSettings(
        service_name="bench",
        kafka_bootstrap_servers=bootstrap,
        **FAST,  # type: ignore[arg-type]
    )
    engine = create_engine(f"sqlite+aiosqlite:///{workdir / f'{uuid4().hex}.db'}")
    await create_tables(engine, [BenchApplied])
    table = BenchApplied.__table__  # type: ignore[attr-defined]
    records = _records(count)
    consumer = create_consumer(settings, group_id=f"same-{uuid4().hex[:6]}")
    consumer.subscribe([topic])
    await consumer.start()
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=100)
    producer = create_producer(settings)
    await producer.start()
    started = time.perf_counter()
    producing = asyncio.create_task(_produce(producer, topic, records))
    applied = 0
    while applied < count:
        batches = await consumer.getmany(timeout_ms=500, max_records=200)
        for records_of_partition in batches.values():
            rows = [
                {"sequence": json.loads(r.value or b"{}")["sequence"]} for r in records_of_partition
            ]
            async with engine.begin() as connection:
                await connection.execute(insert(table), rows)
            applied += len(rows)
        if batches:
            await consumer.commit()
    elapsed = time.perf_counter() - started
    await producing
    await producer.stop()
    await consumer.stop()
    await engine.dispose()
    return count / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2,000 events per run")
    parser.add_argument(
        "--per-event-handler",
        action="store_true",
        help="the backbone's handler adds one ORM object per event (its form before 2026-11-29)"
        " instead of one INSERT per batch, the same effect as the baseline's",
    )
    args = parser.parse_args()
    if args.quick:
        args.events = 2000
    handler = "one ORM object per event" if args.per_event_handler else "one INSERT per batch"
    print(
        f"{machine()}; events per run: {args.events}, runs: {args.runs}; "
        f"backbone handler: {handler}",
        flush=True,
    )
    rows = []
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as workdir:
        for run in range(1, args.runs + 1):
            loadavg = load_average()
            raw = await run_raw(broker.bootstrap_servers, args.events)
            same = await run_same_effect(broker.bootstrap_servers, args.events, Path(workdir))
            backbone = await run_backbone(
                broker.bootstrap_servers,
                args.events,
                Path(workdir),
                per_event=args.per_event_handler,
            )
            rows.append((raw, same, backbone, loadavg))
            print(
                f"run {run}: raw {raw:,.0f} ev/s, same effect {same:,.0f} ev/s, "
                f"backbone {backbone:,.0f} ev/s, backbone/same effect {backbone / same:.2f} "
                f"(load average {loadavg})",
                flush=True,
            )
    print(
        "\n| run | raw events/s | same effect events/s | backbone events/s "
        "| backbone/same effect | backbone/raw | load average |"
    )
    print("|---|---|---|---|---|---|---|")
    for run, (raw, same, backbone, loadavg) in enumerate(rows, 1):
        print(
            f"| {run} | {raw:,.0f} | {same:,.0f} | {backbone:,.0f} | {backbone / same:.2f} "
            f"| {backbone / raw:.2f} | {loadavg} |"
        )
    print(
        f"| **median** | **{median([r[0] for r in rows]):,.0f}** "
        f"| **{median([r[1] for r in rows]):,.0f}** | **{median([r[2] for r in rows]):,.0f}** "
        f"| **{median([r[2] / r[1] for r in rows]):.2f}** "
        f"| **{median([r[2] / r[0] for r in rows]):.2f}** | |"
    )
    print("\nraw: aiokafka produce (acks=all) + consume (manual commits), nothing else")
    print("same effect: raw + one INSERT transaction per fetched partition batch, no outbox/inbox")
    print(
        "backbone: outbox relay -> broker -> consumer runner with inbox (goal: >= 0.5x same effect)"
    )
    print(f"load average at the end {load_average()}")


if __name__ == "__main__":
    stop_cleanly_on_sigterm()
    asyncio.run(main())
