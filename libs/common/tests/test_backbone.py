"""The exactly-once backbone against the real embedded broker and a real database."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from bali_common.events import DEAD_LETTER_TOPIC, STREAM_TOPICS, CloudEvent, Stream
from bali_common.messaging.deadletters import DeadLetter
from bali_common.messaging.outbox import ClaimedRecord, OutboxMessage, outbox_backlog
from bali_common.settings import CommonSettings
from bali_common.telemetry import configure_tracing
from bali_devkit.broker import EmbeddedBroker
from bali_devkit.testing.plugin import SettingsFactory, eventually, read_topic, running
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from probe_service import (
    ProbeCrash,
    ProbeFaults,
    ProbeRecorded,
    applied_counts,
    create_probe_app,
    noted_ids,
)
from sqlmodel import select

ACTIVITIES = STREAM_TOPICS[Stream.activities]


class SimulatedDeath(BaseException):
    """Ends a relay or consumer task at an exact point, as os._exit would, without cleanup."""


async def probe_settings(make_settings: SettingsFactory, **overrides: object) -> CommonSettings:
    return await make_settings(CommonSettings, service_name="probe", **overrides)


async def test_rolled_back_event_is_never_published_and_committed_one_is(
    make_settings: SettingsFactory,
) -> None:
    settings = await probe_settings(make_settings)
    app = create_probe_app(settings)
    async with running(app) as client:
        with pytest.raises(ProbeCrash):
            await client.post("/v1/probes", json={"probe_id": "lost", "fail_after_staging": True})
        created = await client.post("/v1/probes", json={"probe_id": "kept"})
        assert created.status_code == 201
        await eventually(lambda: _applied(app, {"kept": 1}))
    events = await read_topic(settings, ACTIVITIES, expected=1)
    assert [e.data["probe_id"] for e in events] == ["kept"]
    assert events[0].type == "probe.recorded"
    assert events[0].source == "/bali/probe"


async def test_relay_death_between_publish_and_mark_still_applies_once(
    make_settings: SettingsFactory,
) -> None:
    settings = await probe_settings(make_settings)
    first_life = create_probe_app(settings)

    def die_after_publish(_row: ClaimedRecord) -> None:
        raise SimulatedDeath

    async with running(first_life) as client:
        first_life.state.runtime.relay._after_publish = die_after_publish
        await client.post("/v1/probes", json={"probe_id": "p1"})
        await eventually(lambda: _applied(first_life, {"p1": 1}))
        async with first_life.state.runtime.sessions() as session:
            row = (await session.exec(select(OutboxMessage))).one()
            assert row.sent_at is None, "the relay died before marking the row sent"

    second_life = create_probe_app(settings)
    async with running(second_life):
        await eventually(lambda: _backlog_is(second_life, 0))
        await asyncio.sleep(0.5)
        assert await applied_counts(second_life) == {"p1": 1}
        duplicates = second_life.state.runtime.metrics.events_duplicate.labels("probe.applier")
        await eventually(lambda: _positive(duplicates._value.get()))
    published = await read_topic(settings, ACTIVITIES, expected=2)
    assert len(published) == 2, "published twice, applied once"
    assert published[0].id == published[1].id


async def test_consumer_killed_after_db_commit_before_offset_commit_applies_once(
    make_settings: SettingsFactory,
) -> None:
    settings = await probe_settings(make_settings)
    first_life = create_probe_app(settings)
    async with running(first_life) as client:
        runner = first_life.state.runtime.consumers[0]

        def die_after_commit(_event: CloudEvent) -> None:
            raise SimulatedDeath

        runner._after_commit = die_after_commit
        await client.post("/v1/probes", json={"probe_id": "c1"})
        await eventually(lambda: _applied(first_life, {"c1": 1}))
        await runner.abandon()

    second_life = create_probe_app(settings)
    async with running(second_life) as client:
        await client.post("/v1/probes", json={"probe_id": "c2"})
        await eventually(lambda: _applied(second_life, {"c1": 1, "c2": 1}))
        duplicates = second_life.state.runtime.metrics.events_duplicate.labels("probe.applier")
        assert duplicates._value.get() == 1, "c1 was redelivered and skipped by the inbox"


async def test_poison_events_are_dead_lettered_once_and_the_rest_applied(
    make_settings: SettingsFactory,
) -> None:
    settings = await probe_settings(make_settings, consumer_max_attempts=3)
    app = create_probe_app(settings, ProbeFaults(poison_ids={"bad-handler"}))
    async with running(app) as client:
        topic = ACTIVITIES.qualified(settings.kafka_topic_prefix)
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
        await producer.start()
        try:
            good = CloudEvent.of(ProbeRecorded(probe_id="ok-1"), source="/t", subject="k")
            schema_broken = good.model_copy(update={"data": {"wrong": 1}, "id": good.id.int + 1})
            await producer.send_and_wait(
                topic, b"{not json", key=b"k", headers=good.kafka_headers()
            )
            await producer.send_and_wait(
                topic,
                schema_broken.kafka_value(),
                key=b"k",
                headers=[(n, v) for n, v in good.kafka_headers() if n != "ce_id"]
                + [("ce_id", b"00000000-0000-0000-0000-000000000001")],
            )
            await producer.send_and_wait(
                topic, good.kafka_value(), key=b"k", headers=good.kafka_headers()
            )
        finally:
            await producer.stop()
        await client.post("/v1/probes", json={"probe_id": "bad-handler"})
        await client.post("/v1/probes", json={"probe_id": "ok-2"})
        await eventually(lambda: _applied(app, {"ok-1": 1, "ok-2": 1}))
        await eventually(lambda: _dead_letter_count_is(app, 3))
        # Both handlers ran for the good events; the first handler's effect on the poison
        # event rolled back with the second handler's crash (absent from `applied` above).
        assert await noted_ids(app) == {"ok-1", "ok-2"}
        async with app.state.runtime.sessions() as session:
            letters = list((await session.exec(select(DeadLetter))).all())
        assert len(letters) == 3
        errors = sorted(letter.error.split(":")[0] for letter in letters)
        assert errors == ["ProbeCrash", "invalid event", "schema violation"]
        handler_letter = next(x for x in letters if x.error.startswith("ProbeCrash"))
        assert handler_letter.attempts == 3
    dead = await _read_raw(settings, DEAD_LETTER_TOPIC.qualified(settings.kafka_topic_prefix), 3)
    assert len(dead) == 3
    for headers in dead:
        assert headers["dlt-group"] == "probe.applier"
        assert headers["dlt-error"]


async def test_writes_succeed_while_broker_paused_and_all_events_arrive_after(
    make_settings: SettingsFactory, embedded_broker: EmbeddedBroker | None
) -> None:
    if embedded_broker is None:
        pytest.skip("pausing needs the embedded broker process")
    settings = await probe_settings(make_settings)
    app = create_probe_app(settings)
    async with running(app) as client:
        await client.post("/v1/probes", json={"probe_id": "before"})
        await eventually(lambda: _applied(app, {"before": 1}))
        embedded_broker.pause()
        try:
            statuses = [
                (await client.post("/v1/probes", json={"probe_id": f"during-{n}"})).status_code
                for n in range(40)
            ]
            health = await client.get("/healthz")
        finally:
            embedded_broker.resume()
        assert statuses == [201] * 40
        assert health.status_code == 200
        expected = {"before": 1} | {f"during-{n}": 1 for n in range(40)}
        await eventually(lambda: _applied(app, expected), timeout=60)
        await eventually(lambda: _backlog_is(app, 0))


async def test_one_trace_spans_http_request_outbox_broker_and_consumer(
    make_settings: SettingsFactory,
) -> None:
    settings = await probe_settings(make_settings)
    exporter = InMemorySpanExporter()
    # Spans are recorded only once something exports them: this test's exporter.
    configure_tracing(settings, extra_processors=(SimpleSpanProcessor(exporter),))
    app = create_probe_app(settings)
    async with running(app) as client:
        await client.post("/v1/probes", json={"probe_id": "traced"})
        await eventually(lambda: _applied(app, {"traced": 1}))
        await eventually(lambda: _has_span(exporter, "process probe.recorded"))
    spans = exporter.get_finished_spans()
    server = next(s for s in spans if s.name == "POST /v1/probes")
    publish = next(s for s in spans if s.name.startswith("publish "))
    process = next(s for s in spans if s.name == "process probe.recorded")
    assert server.context is not None
    assert process.context is not None
    assert publish.context is not None
    assert process.context.trace_id == server.context.trace_id
    assert publish.context.trace_id == server.context.trace_id
    assert process.parent is not None
    assert process.parent.span_id == publish.context.span_id


async def _applied(app: object, expected: dict[str, int]) -> bool:
    return await applied_counts(app) == expected  # type: ignore[arg-type]


async def _backlog_is(app: object, expected: int) -> bool:
    return await outbox_backlog(app.state.runtime.sessions) == expected  # type: ignore[attr-defined]


async def _dead_letter_count_is(app: Any, expected: int) -> bool:
    async with app.state.runtime.sessions() as session:
        return len((await session.exec(select(DeadLetter))).all()) == expected


async def _positive(value: float) -> bool:
    return value > 0


async def _has_span(exporter: InMemorySpanExporter, name: str) -> bool:
    return any(span.name == name for span in exporter.get_finished_spans())


async def _read_raw(settings: CommonSettings, topic: str, expected: int) -> list[dict[str, str]]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, fetch_max_wait_ms=10
    )
    await consumer.start()
    found: list[dict[str, str]] = []
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(15):
                while len(found) < expected:
                    for records in (await consumer.getmany(timeout_ms=200)).values():
                        found.extend({k: v.decode() for k, v in r.headers} for r in records)
        for records in (await consumer.getmany(timeout_ms=300)).values():
            found.extend({k: v.decode() for k, v in r.headers} for r in records)
    finally:
        await consumer.stop()
    return found


async def test_events_committed_before_during_and_after_a_broker_restart_arrive_once(
    make_settings: SettingsFactory,
) -> None:
    """The memory-only broker is killed and a new one starts on the same port: the relay
    sees a new incarnation and publishes its kept rows again, the consumer is replaced and
    rejoins, and the inbox turns the repeats into duplicates skipped."""
    broker = EmbeddedBroker()
    broker.start()
    try:
        settings = await probe_settings(
            make_settings,
            kafka_bootstrap_servers=broker.bootstrap_servers,
            broker_check_interval_s=0.2,
            consumer_commit_timeout_s=2.0,
        )
        app = create_probe_app(settings)
        async with running(app) as client:
            await client.post("/v1/probes", json={"probe_id": "before"})
            await eventually(lambda: _applied(app, {"before": 1}))
            first = broker.cluster_id
            broker.kill()
            during = [
                (await client.post("/v1/probes", json={"probe_id": f"during-{n}"})).status_code
                for n in range(5)
            ]
            ready = await client.get("/readyz")
            broker.start()
            assert broker.cluster_id != first
            await client.post("/v1/probes", json={"probe_id": "after"})
            expected = {"before": 1, "after": 1} | {f"during-{n}": 1 for n in range(5)}
            await eventually(lambda: _applied(app, expected), timeout=90)
            await eventually(lambda: _backlog_is(app, 0))
            runtime = app.state.runtime
            assert runtime.metrics.outbox_replayed._value.get() >= 1
            duplicates = runtime.metrics.events_duplicate.labels("probe.applier")
            await eventually(lambda: _positive(duplicates._value.get()), timeout=30)
        assert during == [201] * 5
        assert ready.status_code == 200, "writes are still accepted: degraded, not unready"
        assert ready.json()["status"] == "degraded"
        assert ready.json()["checks"]["broker"].startswith("unavailable")
    finally:
        broker.stop()


async def test_a_planned_stop_publishes_the_outbox_and_applies_what_is_in_flight(
    make_settings: SettingsFactory,
) -> None:
    settings = await probe_settings(make_settings)
    app = create_probe_app(settings)
    written = [f"s{n}" for n in range(30)]
    async with running(app) as client:
        for probe_id in written:
            await client.post("/v1/probes", json={"probe_id": probe_id})
    # Nothing waited for the consumer: the stop itself drained outbox and consumer lag.
    reopened = create_probe_app(settings)
    async with running(reopened, wait_for_messaging=False):
        assert await applied_counts(reopened) == dict.fromkeys(written, 1)
        assert await outbox_backlog(reopened.state.runtime.sessions) == 0


async def test_the_backlog_gauge_reads_the_database_while_the_broker_is_away(
    make_settings: SettingsFactory, embedded_broker: EmbeddedBroker | None
) -> None:
    if embedded_broker is None:
        pytest.skip("pausing needs the embedded broker process")
    settings = await probe_settings(make_settings)
    app = create_probe_app(settings)
    async with running(app) as client:
        embedded_broker.pause()
        try:
            for n in range(3):
                await client.post("/v1/probes", json={"probe_id": f"held-{n}"})
            scraped = (await client.get("/metrics")).text
        finally:
            embedded_broker.resume()
    assert "bali_outbox_backlog 3.0" in scraped
