"""The outbox relay: shared work, publishing again onto a new broker, the retention purge."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bali_common.db import create_engine, create_session_factory, create_tables, transaction, utcnow
from bali_common.events import STREAM_TOPICS, Stream
from bali_common.messaging.inbox import InboxEntry, purge_applied
from bali_common.messaging.kafka import create_producer, ensure_topics
from bali_common.messaging.outbox import (
    SIGNAL_INFO_KEY,
    SOURCE_INFO_KEY,
    BrokerIncarnation,
    OutboxMessage,
    OutboxSignal,
    outbox_backlog,
    purge_sent,
    stage_event,
)
from bali_common.messaging.relay import OutboxRelay
from bali_common.metrics import ServiceMetrics
from bali_common.settings import CommonSettings
from bali_devkit.testing.plugin import SettingsFactory, eventually, read_topic
from probe_service import ProbeRecorded
from sqlalchemy import update
from sqlmodel import col, select

EVENTS = 300


async def test_two_relays_publish_every_row_exactly_once(make_settings: SettingsFactory) -> None:
    settings = await make_settings(CommonSettings, service_name="relays", outbox_batch_size=20)
    await ensure_topics(settings)
    engine = create_engine(settings.resolved_database_url())
    await create_tables(engine, [OutboxMessage])
    sessions = create_session_factory(engine)
    signal = OutboxSignal()
    sessions.configure(info={SIGNAL_INFO_KEY: signal, SOURCE_INFO_KEY: "/bali/relays"})
    for start in range(0, EVENTS, 50):
        async with transaction(sessions) as session:
            for n in range(start, start + 50):
                stage_event(session, ProbeRecorded(probe_id=f"p{n}"), subject=f"agg-{n % 7}")
    producers = [create_producer(settings) for _ in range(2)]
    relays = [
        OutboxRelay(
            settings=settings.model_copy(update={"relay_id": f"relay-{n}"}),
            session_factory=sessions,
            producer=producer,
            signal=OutboxSignal(),
            metrics=ServiceMetrics("relays"),
        )
        for n, producer in enumerate(producers)
    ]
    for producer in producers:
        await producer.start()
    tasks = [asyncio.create_task(relay.run()) for relay in relays]
    try:
        await eventually(lambda: _backlog_is_zero(sessions))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for producer in producers:
            await producer.stop()
        await engine.dispose()
    events = await read_topic(settings, STREAM_TOPICS[Stream.activities], expected=EVENTS)
    assert len(events) == EVENTS
    assert len({event.id for event in events}) == EVENTS
    published = [
        relay._metrics.outbox_published.labels("bali.activities")._value.get() for relay in relays
    ]
    assert sum(published) == EVENTS


async def _backlog_is_zero(sessions: object) -> bool:
    return await outbox_backlog(sessions) == 0  # type: ignore[arg-type]


async def test_kept_rows_are_published_again_in_order_onto_a_new_broker_incarnation(
    make_settings: SettingsFactory,
) -> None:
    settings = await make_settings(CommonSettings, service_name="replay", outbox_batch_size=7)
    await ensure_topics(settings)
    engine = create_engine(settings.resolved_database_url())
    await create_tables(engine, [OutboxMessage, BrokerIncarnation])
    sessions = create_session_factory(engine)
    sessions.configure(info={SIGNAL_INFO_KEY: OutboxSignal(), SOURCE_INFO_KEY: "/bali/replay"})
    async with transaction(sessions) as session:
        for n in range(20):
            stage_event(session, ProbeRecorded(probe_id=f"r{n}"), subject="one-aggregate")
    producer = create_producer(settings)
    await producer.start()
    metrics = ServiceMetrics("replay")
    new_brokers: list[str] = []

    async def remember_new_broker() -> None:
        new_brokers.append("seen")

    relay = OutboxRelay(
        settings=settings,
        session_factory=sessions,
        producer=producer,
        signal=OutboxSignal(),
        metrics=metrics,
        on_new_broker=remember_new_broker,
    )
    try:
        assert await relay.drain() == 20
        assert await relay.drain() == 0, "the same incarnation: nothing again"
        async with transaction(sessions) as session:
            # As if the rows had gone to a broker that has since been replaced.
            await session.exec(update(OutboxMessage).values(sent_incarnation="an-older-broker"))
            await session.merge(BrokerIncarnation(name="broker", cluster_id="an-older-broker"))
        relay._incarnation = None
        relay._broker_checked_at = -float("inf")
        assert await relay.drain() == 20
        assert metrics.outbox_replayed._value.get() == 20
        assert len(new_brokers) == 2, "first sight of the broker, then its successor"
    finally:
        await producer.stop()
        await engine.dispose()
    events = await read_topic(settings, STREAM_TOPICS[Stream.activities], expected=40)
    ids = [event.data["probe_id"] for event in events]
    assert ids == [f"r{n}" for n in range(20)] * 2, "each incarnation got every row, in order"


async def test_sent_rows_past_retention_are_purged_in_batches_and_nothing_else(
    make_settings: SettingsFactory,
) -> None:
    settings = await make_settings(CommonSettings, service_name="purge")
    engine = create_engine(settings.resolved_database_url())
    await create_tables(engine, [OutboxMessage, InboxEntry])
    sessions = create_session_factory(engine)
    sessions.configure(info={SIGNAL_INFO_KEY: OutboxSignal(), SOURCE_INFO_KEY: "/bali/purge"})
    now = utcnow()
    old, recent = now - timedelta(days=8), now - timedelta(days=1)
    async with transaction(sessions) as session:
        for n in range(25):
            stage_event(session, ProbeRecorded(probe_id=f"x{n}"), subject="a")
        for n in range(25):
            session.add(
                InboxEntry(
                    consumer_group="g",
                    event_id=f"e{n}",
                    event_type="probe.recorded",
                    topic="bali.activities",
                    partition=0,
                    offset=n,
                    processed_at=old if n < 12 else recent,
                )
            )
    async with transaction(sessions) as session:
        await session.exec(
            update(OutboxMessage).where(col(OutboxMessage.id) <= 10).values(sent_at=old)
        )
        await session.exec(
            update(OutboxMessage)
            .where(col(OutboxMessage.id) > 10, col(OutboxMessage.id) <= 15)
            .values(sent_at=recent)
        )
    cutoff = now - timedelta(days=7)
    try:
        assert await purge_sent(sessions, older_than=cutoff, batch=3) == 10
        assert await purge_applied(sessions, older_than=cutoff, batch=5) == 12
        async with sessions() as session:
            left = list((await session.exec(select(OutboxMessage.id))).all())
            inbox = list((await session.exec(select(InboxEntry.event_id))).all())
    finally:
        await engine.dispose()
    assert sorted(left) == list(range(11, 26)), "recent sent rows and unsent ones stay"
    assert sorted(inbox) == sorted(f"e{n}" for n in range(12, 25))


async def test_rows_sent_before_the_retention_window_are_never_published_again(
    make_settings: SettingsFactory,
) -> None:
    """A database from before retention existed keeps its whole history: only what the inbox
    still remembers may go again onto a new broker."""
    settings = await make_settings(CommonSettings, service_name="old-rows")
    await ensure_topics(settings)
    engine = create_engine(settings.resolved_database_url())
    await create_tables(engine, [OutboxMessage, BrokerIncarnation])
    sessions = create_session_factory(engine)
    sessions.configure(info={SIGNAL_INFO_KEY: OutboxSignal(), SOURCE_INFO_KEY: "/bali/old-rows"})
    async with transaction(sessions) as session:
        for n in range(6):
            stage_event(session, ProbeRecorded(probe_id=f"o{n}"), subject="a")
    async with transaction(sessions) as session:
        await session.exec(
            update(OutboxMessage)
            .where(col(OutboxMessage.id) <= 4)
            .values(sent_at=utcnow() - timedelta(days=30), sent_incarnation=None)
        )
        await session.exec(
            update(OutboxMessage)
            .where(col(OutboxMessage.id) > 4)
            .values(sent_at=utcnow() - timedelta(hours=1), sent_incarnation="old")
        )
    producer = create_producer(settings)
    await producer.start()
    relay = OutboxRelay(
        settings=settings,
        session_factory=sessions,
        producer=producer,
        signal=OutboxSignal(),
        metrics=ServiceMetrics("old-rows"),
    )
    try:
        assert await relay.drain() == 2, "the two rows sent an hour ago, not the month-old ones"
    finally:
        await producer.stop()
        await engine.dispose()
