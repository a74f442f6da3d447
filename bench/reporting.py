"""Reporting at scale: rebuild throughput against a raw consume, and every report's latency.

One run, one embedded broker: N activities (with status changes), M alerts walked
through their lifecycle, their deliveries and the member directory are published as
the services would publish them. Then:

- raw: a group-less aiokafka consumer reads every record of the four topics from
  offset 0 to the high-water marks, doing nothing with them (events/s);
- rebuild: the reporting service (in process, SQLite) rebuilds from the same topics
  through `POST /v1/admin/rebuild` (events/s from its progress resource). A first
  rebuild loads the tables; the measured one runs when the live consumer is idle;
- reports: every `/v1/reports/*` route is called repeatedly through the app (ASGI, no
  network) with the tables full; p50 and p95 in milliseconds.

Run: `uv run --frozen python bench/reporting.py` (see bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import random
import resource
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from bali_common.auth import Role, issue_dev_token
from bali_common.catalogue import load_strategy
from bali_common.events import STREAM_TOPICS, CloudEvent, EventPayload
from bali_common.events.activities import (
    ActivityCreated,
    ActivityParticipant,
    ActivityStatus,
    ActivityStatusChanged,
    ActivitySummary,
    ActivityType,
    AgeGroupValue,
    OutputValue,
    ParticipantRole,
    SexDisaggregation,
)
from bali_common.events.alerts import (
    AlertAcknowledged,
    AlertConsultationConvened,
    AlertRaised,
    AlertResolved,
    AlertStatus,
    AlertSummary,
    Certainty,
    Sensitivity,
    Severity,
    SituationType,
    Urgency,
)
from bali_common.events.members import MemberKind, MemberRegistered
from bali_common.events.notifications import Channel, NotificationDelivered, NotificationSent
from bali_common.events.shared import Actor
from bali_common.messaging.kafka import ensure_topics
from bali_common.migrations import upgrade
from bali_common.server import freeze_after_startup
from bali_devkit.broker import EmbeddedBroker
from bali_reporting import migrations
from bali_reporting.app import create_app
from bali_reporting.settings import ReportingSettings

FAST = {
    "kafka_session_timeout_ms": 6000,
    "kafka_heartbeat_interval_ms": 300,
    "kafka_rebalance_timeout_ms": 3000,
    "kafka_fetch_max_wait_ms": 10,
}
MEMBERS = [f"M{n:02d}" for n in range(45)]
ACTOR = Actor(subject="bench", member_id="M00")
STRATEGY = load_strategy()
REPORTS = [
    ("coverage", {}),
    ("trends", {}),
    ("indicators", {}),
    ("alerts", {}),
    ("response-times", {}),
    ("deliveries", {}),
    ("pipeline", {}),
    ("follow-up", {}),
]


def bench_settings(
    workdir: Path, broker: EmbeddedBroker, *, database_url: str | None = None
) -> ReportingSettings:
    """A reporting service on its own topics; the other services' /metrics unreachable."""
    return ReportingSettings(
        data_dir=workdir,
        kafka_bootstrap_servers=broker.bootstrap_servers,
        kafka_topic_prefix=f"bench{uuid4().hex[:6]}.",
        database_url=database_url,
        activities_url="http://127.0.0.1:9",
        consultation_url="http://127.0.0.1:9",
        notifications_url="http://127.0.0.1:9",
        rate_limit_enabled=False,
        **FAST,  # type: ignore[arg-type]
    )


def event(payload: EventPayload, subject: str) -> CloudEvent:
    return CloudEvent.of(payload, source="/bench", subject=subject)


def activities(count: int, alerts: int, rng: random.Random, today: date) -> list[CloudEvent]:
    events = []
    indicators = ["officers trained", "people reached", "participants", "victims identified"]
    for n in range(count):
        start = today - timedelta(days=rng.randint(0, 720))
        items = rng.sample(range(1, 26), rng.choice([1, 2, 3]))
        lead, *others = rng.sample(MEMBERS, rng.randint(1, 4))
        value = rng.randint(5, 500)
        female = rng.randint(0, value)
        summary = ActivitySummary(
            activity_id=f"a{n}",
            version=1,
            title=f"Activity {n}",
            item_numbers=items,
            area_numbers=sorted({STRATEGY.item(i).area_number for i in items}),
            type=rng.choice(list(ActivityType)),
            status=ActivityStatus.planned,
            lead_member=lead,
            participating_members=others,
            participants=[
                ActivityParticipant(member_id=lead, role=ParticipantRole.lead),
                *(
                    ActivityParticipant(member_id=m, role=ParticipantRole.participant)
                    for m in others
                ),
            ],
            planned_start=start,
            planned_end=start + timedelta(days=rng.randint(1, 120)),
            related_alert_id=f"al{rng.randrange(alerts)}" if n % 50 == 0 else None,
            outputs=[
                OutputValue(
                    indicator=rng.choice(indicators),
                    value=value,
                    by_sex=SexDisaggregation(female=female, male=value - female),
                    by_age=[AgeGroupValue(age_group="18-24", value=value // 3)],
                )
            ],
        )
        events.append(
            event(
                ActivityCreated(activity=summary, actor=ACTOR, occurred_at=datetime.now(UTC)),
                f"a{n}",
            )
        )
        if n % 3 == 0:
            done = summary.model_copy(update={"version": 2, "status": ActivityStatus.completed})
            changed = ActivityStatusChanged(
                activity=done,
                actor=ACTOR,
                occurred_at=datetime.now(UTC),
                previous_status=ActivityStatus.planned,
            )
            events.append(event(changed, f"a{n}"))
    return events


def alert_lifecycles(count: int, rng: random.Random, now: datetime) -> list[CloudEvent]:
    events = []
    steps: list[tuple[Any, AlertStatus, dict[str, Any]]] = [
        (AlertRaised, AlertStatus.raised, {"description": "Boats adrift"}),
        (AlertAcknowledged, AlertStatus.acknowledged, {}),
        (
            AlertConsultationConvened,
            AlertStatus.consultation_convened,
            {"convened_for": now, "participants": ["AU"]},
        ),
        (AlertResolved, AlertStatus.resolved, {"summary": "Safe"}),
    ]
    for n in range(count):
        raised = now - timedelta(days=rng.randint(0, 700), minutes=rng.randint(0, 1000))
        reached = rng.randint(1, len(steps))
        affected = rng.sample(MEMBERS, 2)
        for version, (model, status, extra) in enumerate(steps[:reached], start=1):
            summary = AlertSummary(
                alert_id=f"al{n}",
                version=version,
                status=status,
                situation_type=SituationType.maritime_distress,
                title=f"Alert {n}",
                severity=rng.choice([Severity.extreme, Severity.severe, Severity.moderate]),
                urgency=Urgency.immediate,
                certainty=Certainty.observed,
                sensitivity=Sensitivity.restricted if n % 10 == 0 else Sensitivity.public,
                raised_by_member=rng.choice(MEMBERS),
                affected_members=affected,
                raised_at=raised,
                acknowledged_at=raised + timedelta(minutes=rng.randint(1, 90))
                if version >= 2
                else None,
                convened_at=raised + timedelta(hours=rng.randint(1, 30)) if version >= 3 else None,
                resolved_at=raised + timedelta(days=rng.randint(1, 9)) if version >= 4 else None,
            )
            events.append(
                event(model(alert=summary, actor=ACTOR, occurred_at=raised, **extra), f"al{n}")
            )
        for channel in (Channel.email, Channel.inbox):
            delivery = f"d{n}-{channel.value}"
            common = {
                "delivery_id": delivery,
                "source_event_id": str(uuid4()),
                "source_event_type": "alert.raised",
                "channel": channel,
                "recipient": "focal.point@example.org",
                "member_id": affected[0],
                "alert_id": f"al{n}",
                "severity": "Extreme",
                "attempt": 1,
            }
            events.append(event(NotificationSent(**common, occurred_at=raised), delivery))
            delivered = NotificationDelivered(
                **common, occurred_at=raised + timedelta(seconds=rng.randint(1, 30))
            )
            events.append(event(delivered, delivery))
    return events


def directory() -> list[CloudEvent]:
    return [
        event(
            MemberRegistered(
                member_id=m,
                name=f"Member {m}",
                kind=MemberKind.member_state,
                is_co_chair=m in ("M00", "M01"),
                version=1,
            ),
            m,
        )
        for m in MEMBERS
    ]


async def publish(settings: ReportingSettings, events: list[CloudEvent]) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    started = time.perf_counter()
    try:
        for item in events:
            topic = STREAM_TOPICS[item.payload().stream].qualified(settings.kafka_topic_prefix)
            await producer.send(
                topic, item.kafka_value(), key=item.kafka_key(), headers=item.kafka_headers()
            )
        await producer.flush()
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def raw_consume(settings: ReportingSettings, expected: int) -> float:
    """Events/s of a group-less consumer reading every record to the high-water marks."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        max_partition_fetch_bytes=4 * 1_048_576,
    )
    await consumer.start()
    partitions = [
        TopicPartition(spec.qualified(settings.kafka_topic_prefix), p)
        for spec in STREAM_TOPICS.values()
        for p in range(spec.partitions)
    ]
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    started = time.perf_counter()
    read = 0
    while read < expected:
        batches = await consumer.getmany(timeout_ms=200, max_records=5000)
        read += sum(len(records) for records in batches.values())
    elapsed = time.perf_counter() - started
    await consumer.stop()
    return read / elapsed


async def rebuild(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    requested = await client.post("/v1/admin/rebuild", headers=headers)
    requested.raise_for_status()
    location = requested.headers["location"]
    while True:
        await asyncio.sleep(0.2)
        status = (await client.get(location, headers=headers)).json()
        if status["state"] in ("done", "failed", "abandoned"):
            return dict(status)


async def caught_up(client: httpx.AsyncClient, headers: dict[str, str], total: int) -> None:
    """Until the live consumer has applied (or, after a rebuild, skipped) every event."""
    while True:
        counts = await client.get("/v1/pipeline/event-counts", headers=headers)
        if counts.json()["total"] >= total:
            return
        await asyncio.sleep(0.5)


async def time_reports(
    client: httpx.AsyncClient, headers: dict[str, str], requests: int
) -> list[tuple[str, float, float, int]]:
    results = []
    for name, params in REPORTS:
        url = f"/v1/reports/{name}"
        for _ in range(3):
            (await client.get(url, params=params, headers=headers)).raise_for_status()
        timings = []
        for _ in range(requests):
            started = time.perf_counter()
            response = await client.get(url, params=params, headers=headers)
            timings.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
        timings.sort()
        p95 = timings[max(0, round(0.95 * len(timings)) - 1)]
        results.append((name, statistics.median(timings), p95, len(response.content)))
    return results


def peak_rss_mb() -> float:
    """The process's peak resident set so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--activities", type=int, default=50_000)
    parser.add_argument("--alerts", type=int, default=2_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--database-url", default=None, help="e.g. postgresql+asyncpg://...; default SQLite"
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    now = datetime.now(UTC)
    events = [
        *directory(),
        *activities(args.activities, args.alerts, rng, now.date()),
        *alert_lifecycles(args.alerts, rng, now),
    ]
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as workdir:
        settings = bench_settings(Path(workdir), broker, database_url=args.database_url)
        await ensure_topics(settings)
        await upgrade(settings.resolved_database_url(), migrations.DIRECTORY, quiet=True)
        published_s = await publish(settings, events)
        # The service's process does not hold the published events: neither does this one
        # from here (80,000 events in memory made each full garbage collection of the
        # rebuild cost about a second).
        total = len(events)
        del events
        gc.collect()
        print(f"published {total:,} events in {published_s:.1f}s", flush=True)
        raw = await raw_consume(settings, total)
        print(f"raw consume: {raw:,.0f} events/s", flush=True)
        print(f"peak RSS before the service starts: {peak_rss_mb():,.0f} MB", flush=True)
        app = create_app(settings)
        # As `bali_common.server.serve` runs every service: what startup built is frozen out
        # of the collector (without it, this process's full collections took about 150 ms
        # each, one every twenty report calls).
        freeze_after_startup(app)
        admin = {
            "Authorization": "Bearer "
            + issue_dev_token(settings, subject="bench", member_id=None, roles=[Role.admin])
        }
        async with app.router.lifespan_context(app):
            await asyncio.wait_for(app.state.runtime.messaging_ready.wait(), 60)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://bench", timeout=120
            ) as client:
                loaded = await rebuild(client, admin)
                first = loaded["events_per_second"]
                print(f"first rebuild (live consumer busy): {first:,.0f} events/s", flush=True)
                await caught_up(client, admin, total)
                measured = await rebuild(client, admin)
                print(
                    f"rebuild: {measured['events_per_second']:,.0f} events/s ({measured['state']})",
                    flush=True,
                )
                print(f"peak RSS after both rebuilds: {peak_rss_mb():,.0f} MB", flush=True)
                timings = await time_reports(client, admin, args.requests)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"\n{date.today().isoformat()}, {machine}, load average {load}")
    database = "PostgreSQL" if args.database_url else "SQLite"
    size = f"{args.activities:,} activities, {args.alerts:,} alerts"
    print(f"{total:,} events: {size}, {database}\n")
    print("| measure | value |\n|---|---|")
    print(f"| raw aiokafka consume | {raw:,.0f} events/s |")
    print(
        f"| rebuild (replay, shadow tables, swap) | {measured['events_per_second']:,.0f} events/s |"
    )
    print(f"| ratio rebuild/raw | {measured['events_per_second'] / raw:.2f} |\n")
    print("| report | p50 ms | p95 ms | bytes |\n|---|---|---|---|")
    for name, p50, p95, size in timings:
        print(f"| /v1/reports/{name} | {p50:.1f} | {p95:.1f} | {size:,} |")


if __name__ == "__main__":
    asyncio.run(main())
