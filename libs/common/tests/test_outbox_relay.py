"""Several relays on one outbox share the work and never publish a row twice."""

from __future__ import annotations

import asyncio

from bali_common.db import create_engine, create_session_factory, create_tables, transaction
from bali_common.events import STREAM_TOPICS, Stream
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
from bali_devkit.testing.plugin import SettingsFactory, eventually, read_topic
from probe_service import ProbeRecorded

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
