"""What keeping sent outbox rows costs: table size, relay throughput, purge and replay time.

Sent rows are kept for a retention window so that a relay can publish them again onto a
new broker incarnation. This measures, on SQLite (the embedded default) and on PostgreSQL
when BALI_BENCH_POSTGRES_URL is set: the database size with `--kept` sent rows, the relay's
events/s publishing a fresh batch with those rows kept against an empty table, the purge of
the kept rows, and how long returning them to pending takes on a new incarnation.
Run: `make bench` (or `uv run python bench/outbox_retention.py --kept 1000000`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import asyncpg
from bali_common.db import create_engine, create_session_factory, create_tables, transaction, utcnow
from bali_common.events import EventPayload, Stream, event_type
from bali_common.messaging.kafka import create_producer, ensure_topics
from bali_common.messaging.outbox import (
    SIGNAL_INFO_KEY,
    SOURCE_INFO_KEY,
    BrokerIncarnation,
    OutboxMessage,
    OutboxSignal,
    purge_sent,
    stage_event,
)
from bali_common.messaging.relay import OutboxRelay
from bali_common.metrics import ServiceMetrics
from bali_common.settings import CommonSettings
from bali_devkit.broker import EmbeddedBroker
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url


@event_type("bench.kept", stream=Stream.activities)
class BenchKept(EventPayload):
    """A benchmark event of about 300 bytes."""

    sequence: int
    padding: str


async def fill_kept(sessions: object, kept: int) -> None:
    """`kept` rows already sent, written with executemany (the size of a busy week)."""
    headers = '[["ce_type","bench.kept"]]'
    value = b'{"sequence":0,"padding":"' + b"x" * 260 + b'"}'
    sent_at = utcnow() - timedelta(hours=1)
    batch = 20_000
    for start in range(0, kept, batch):
        rows = [
            {
                "event_id": uuid4().hex,
                "topic": "bali.activities",
                "key": f"agg-{n % 100}",
                "event_type": "bench.kept",
                "headers": headers,
                "value": value,
                "created_at": sent_at,
                "sent_at": sent_at,
                "sent_incarnation": "kept-broker",
                "attempts": 0,
            }
            for n in range(start, min(kept, start + batch))
        ]
        async with transaction(sessions) as session:  # type: ignore[arg-type]
            await session.exec(insert(OutboxMessage), params=rows)  # type: ignore[call-overload]


async def relay_rate(settings: CommonSettings, sessions: object, fresh: int) -> float:
    """Events/s of the relay publishing `fresh` new rows (acks=all) beside what is kept."""
    for start in range(0, fresh, 500):
        async with transaction(sessions) as session:  # type: ignore[arg-type]
            for n in range(start, min(fresh, start + 500)):
                stage_event(
                    session, BenchKept(sequence=n, padding="x" * 200), subject=f"a{n % 100}"
                )
    producer = create_producer(settings)
    await producer.start()
    relay = OutboxRelay(
        settings=settings,
        session_factory=sessions,  # type: ignore[arg-type]
        producer=producer,
        signal=OutboxSignal(),
        metrics=ServiceMetrics("bench"),
    )
    relay._incarnation = "kept-broker"  # the kept rows' broker: no replay in this part
    relay._broker_checked_at = float("inf")
    try:
        started = time.perf_counter()
        published = await relay.drain()
        elapsed = time.perf_counter() - started
    finally:
        await producer.stop()
    assert published == fresh, (published, fresh)
    return fresh / elapsed


async def measure(url: str, bootstrap: str, kept: int, fresh: int) -> dict[str, float]:
    settings = CommonSettings(
        service_name="bench",
        kafka_bootstrap_servers=bootstrap,
        kafka_topic_prefix=f"k{uuid4().hex[:8]}.",
        database_url=url,
        outbox_batch_size=500,
        retention_purge_batch=5_000,
    )
    await ensure_topics(settings)
    engine = create_engine(url)
    await create_tables(engine, [OutboxMessage, BrokerIncarnation])
    sessions = create_session_factory(engine)
    sessions.configure(info={SIGNAL_INFO_KEY: OutboxSignal(), SOURCE_INFO_KEY: "/bali/bench"})
    result: dict[str, float] = {}
    try:
        result["empty_events_per_s"] = await relay_rate(settings, sessions, fresh)
        started = time.perf_counter()
        await fill_kept(sessions, kept)
        result["fill_s"] = time.perf_counter() - started
        result["size_mb"] = await database_mb(engine, url)
        result["kept_events_per_s"] = await relay_rate(settings, sessions, fresh)
        producer = create_producer(settings)
        await producer.start()
        relay = OutboxRelay(
            settings=settings,
            session_factory=sessions,
            producer=producer,
            signal=OutboxSignal(),
            metrics=ServiceMetrics("bench"),
        )
        started = time.perf_counter()
        await relay._return_sent_rows("a-new-broker")
        result["return_to_pending_s"] = time.perf_counter() - started
        await producer.stop()
        async with transaction(sessions) as session:
            await session.exec(
                text("UPDATE outbox_messages SET sent_at = :at"),
                params={"at": utcnow() - timedelta(days=30)},
            )  # type: ignore[call-overload]
        started = time.perf_counter()
        purged = await purge_sent(
            sessions, older_than=utcnow() - timedelta(days=7), batch=settings.retention_purge_batch
        )
        result["purge_s"] = time.perf_counter() - started
        result["purged"] = purged
    finally:
        await engine.dispose()
    return result


async def database_mb(engine: object, url: str) -> float:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(str(parsed.database))
        files = [path, path.with_name(path.name + "-wal")]
        sizes = await asyncio.to_thread(lambda: [f.stat().st_size for f in files if f.exists()])
        return sum(sizes) / 1e6
    async with engine.connect() as connection:  # type: ignore[attr-defined]
        size = await connection.scalar(text("SELECT pg_total_relation_size('outbox_messages')"))
    return float(size) / 1e6


async def postgres_database(server: str) -> tuple[str, str]:
    name = f"bench_retention_{uuid4().hex[:8]}"
    admin = make_url(server).set(drivername="postgresql", database="postgres")
    connection = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return str(make_url(server).set(database=name)), name


async def drop_postgres_database(server: str, name: str) -> None:
    admin = make_url(server).set(drivername="postgresql", database="postgres")
    connection = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kept", type=int, default=1_000_000)
    parser.add_argument("--fresh", type=int, default=5_000)
    args = parser.parse_args()
    print(
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}; kept={args.kept}, fresh={args.fresh}"
    )
    broker = EmbeddedBroker()
    broker.start()
    try:
        with tempfile.TemporaryDirectory() as workdir:
            url = f"sqlite+aiosqlite:///{Path(workdir) / 'retention.db'}"
            report("SQLite", await measure(url, broker.bootstrap_servers, args.kept, args.fresh))
        server = os.environ.get("BALI_BENCH_POSTGRES_URL")
        if server:
            url, name = await postgres_database(server)
            try:
                report(
                    "PostgreSQL",
                    await measure(url, broker.bootstrap_servers, args.kept, args.fresh),
                )
            finally:
                await drop_postgres_database(server, name)
    finally:
        broker.stop()


def report(backend: str, result: dict[str, float]) -> None:
    ratio = result["kept_events_per_s"] / result["empty_events_per_s"]
    print(
        f"{backend}: size {result['size_mb']:.0f} MB; relay {result['empty_events_per_s']:.0f} "
        f"events/s empty, {result['kept_events_per_s']:.0f} with the rows kept ({ratio:.2f}x); "
        f"back to pending {result['return_to_pending_s']:.1f} s; purge of "
        f"{result['purged']:.0f} rows {result['purge_s']:.1f} s "
        f"(filled in {result['fill_s']:.0f} s)"
    )


if __name__ == "__main__":
    asyncio.run(main())
