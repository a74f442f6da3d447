"""Rebuild: every topic replayed into fresh tables and swapped in, equal to the live projections."""

from __future__ import annotations

import asyncio
import gc
import random
from datetime import timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from bali_common.db import create_engine, create_session_factory, create_tables
from bali_common.events import STREAM_TOPICS, CloudEvent, Stream
from bali_common.events.activities import ActivityStatus
from bali_common.events.alerts import AlertStatus
from bali_common.messaging.inbox import InboxEntry
from bali_devkit.testing.plugin import DatabaseFactory, eventually
from bali_reporting.projections import PROJECTION_MODELS
from bali_reporting.projections.base import ContributionFold
from bali_reporting.rebuild.pausing import ReportingReplica
from reporting_testkit import (
    NOW,
    Reporting,
    activity,
    activity_event,
    alert,
    alert_event,
    delivery_event,
    member_event,
    output,
    publish,
    started,
    table_dump,
)
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from test_projection_properties import in_batches


def history(prefix: str, count: int) -> list[CloudEvent]:
    """Activities, alerts, members and deliveries, with some of each edited."""
    events: list[CloudEvent] = [member_event(f"{prefix}M{n}", co_chair=n == 0) for n in range(3)]
    for n in range(count):
        first = activity(f"{prefix}a{n}", items=[n % 25 + 1, 12], outputs=[output("trained", n)])
        events.append(activity_event(first))
        if n % 3 == 0:
            done = activity(
                f"{prefix}a{n}",
                version=2,
                items=[n % 25 + 1],
                status=ActivityStatus.ongoing,
                related_alert_id=f"{prefix}al{n}",
            )
            events.append(activity_event(done, "updated"))
        if n % 4 == 0:
            raised = alert(f"{prefix}al{n}", raised_at=NOW - timedelta(days=n))
            events.append(alert_event(raised))
            acknowledged = alert(
                f"{prefix}al{n}",
                version=2,
                status=AlertStatus.acknowledged,
                raised_at=raised.raised_at,
                acknowledged_after=timedelta(minutes=n),
            )
            events.append(alert_event(acknowledged))
            events.append(delivery_event(f"{prefix}d{n}", "sent", alert_id=f"{prefix}al{n}"))
            events.append(delivery_event(f"{prefix}d{n}", "delivered", alert_id=f"{prefix}al{n}"))
    return events


async def publish_twice_and_garbage(reporting: Reporting, events: list[CloudEvent]) -> None:
    """Every tenth event published twice (a relay crash), and one record that is not an event."""
    await publish(reporting.settings, [*events, *events[::10]])
    producer = AIOKafkaProducer(bootstrap_servers=reporting.settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        topic = STREAM_TOPICS[Stream.activities].qualified(reporting.settings.kafka_topic_prefix)
        await producer.send_and_wait(topic, b"not json", key=b"garbage")
    finally:
        await producer.stop()


async def rebuild(reporting: Reporting) -> dict[str, Any]:
    admin = reporting.tokens.admin()
    requested = await reporting.client.post("/v1/admin/rebuild", headers=admin)
    assert requested.status_code == 202, requested.text
    location = requested.headers["location"]

    async def finished() -> bool:
        state = (await reporting.client.get(location, headers=admin)).json()["state"]
        return state in ("done", "failed", "abandoned")

    await eventually(finished, timeout=120, interval=0.2)
    return dict((await reporting.client.get(location, headers=admin)).json())


async def test_a_rebuild_equals_the_live_projections_table_by_table(reporting: Reporting) -> None:
    events = history("x", 60)
    await publish_twice_and_garbage(reporting, events)
    await reporting.caught_up(len(events))
    live = await table_dump(reporting.engine)

    run = await rebuild(reporting)
    assert run["state"] == "done", run
    twice = len(events[::10])
    assert run["events_read"] == run["events_target"] == len(events) + twice + 1
    assert run["events_applied"] == len(events)
    assert (run["duplicates"], run["skipped"], run["failed"]) == (twice, 1, 0)
    assert run["events_per_second"] > 0
    assert gc.isenabled(), "the collector paused for the fold runs again after it"

    rebuilt = await table_dump(reporting.engine)
    assert rebuilt.keys() == live.keys()
    for table, rows in live.items():
        assert rebuilt[table] == rows, f"{table} differs after the rebuild"
    latest = await reporting.client.get("/v1/admin/rebuild", headers=reporting.tokens.admin())
    assert latest.json()["id"] == run["id"]


async def test_a_fold_that_cannot_be_written_is_replayed_batch_by_batch(
    reporting: Reporting, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fold's single write fails (as for an event some projection cannot store): the
    run empties the shadow, replays from offset 0 applying batches, and still equals live."""
    events = history("f", 30)
    await publish_twice_and_garbage(reporting, events)
    await reporting.caught_up(len(events))
    live = await table_dump(reporting.engine)
    writes: list[str] = []
    write = ContributionFold.write

    async def fails_once(self: ContributionFold[Any], session: AsyncSession) -> None:
        writes.append(self._head.name)
        if len(writes) == 1:
            await write(self, session)  # part of the fold is in the shadow when it fails
            raise RuntimeError("a row this database refuses")
        await write(self, session)

    monkeypatch.setattr(ContributionFold, "write", fails_once)
    run = await rebuild(reporting)
    assert run["state"] == "done", run
    assert writes == ["coverage_heads"], "after a failed write, no fold is written again"
    twice = len(events[::10])
    assert run["events_read"] == len(events) + twice + 1
    assert run["events_applied"] == len(events)
    assert (run["duplicates"], run["skipped"], run["failed"]) == (twice, 1, 0)
    assert await table_dump(reporting.engine) == live
    assert gc.isenabled()


async def test_events_published_during_a_rebuild_are_applied_once_by_every_replica(
    reporting: Reporting, databases: DatabaseFactory
) -> None:
    """Two replicas share the database and the consumer group; both pause for the swap."""
    before, during = history("b", 150), history("d", 40)
    async with started(reporting.settings) as other:
        other_runner = other.app.state.runtime.consumers[0]
        await publish_twice_and_garbage(reporting, before)
        await reporting.caught_up(len(before))
        admin = reporting.tokens.admin()
        requested = await reporting.client.post("/v1/admin/rebuild", headers=admin)
        assert requested.status_code == 202
        second = await other.client.post("/v1/admin/rebuild", headers=admin)
        assert second.status_code == 409, "one rebuild at a time, whichever replica is asked"
        for start in range(0, len(during), 10):
            await publish(reporting.settings, during[start : start + 10])
            await asyncio.sleep(0.05)
        location = requested.headers["location"]

        async def finished() -> bool:
            state = (await reporting.client.get(location, headers=admin)).json()["state"]
            return state in ("done", "failed")

        await eventually(finished, timeout=120, interval=0.2)
        run = (await other.client.get(location, headers=admin)).json()
        assert run["state"] == "done", run
        everything = [*before, *during]
        await reporting.caught_up(len(everything))

        async def other_resumed() -> bool:
            runner = other.app.state.runtime.consumers[0]
            return runner is not other_runner and runner.ready.is_set()

        await eventually(other_resumed, timeout=30)
        async with reporting.app.state.runtime.sessions() as session:
            replicas = (await session.exec(select(ReportingReplica))).all()
        assert len(replicas) == 2
        await asyncio.sleep(0.5)  # a double application would show now

    # The same events applied straight to fresh tables.
    engine = create_engine(await databases.create("reference"))
    await create_tables(engine, [*PROJECTION_MODELS, InboxEntry])
    await in_batches(create_session_factory(engine), everything, random.Random(7))
    expected = await table_dump(engine)
    await engine.dispose()
    assert await table_dump(reporting.engine) == expected


async def test_only_admins_rebuild_and_unknown_runs_are_not_found(reporting: Reporting) -> None:
    for headers in (
        reporting.tokens.ops(),
        reporting.tokens.co_chair("ID"),
        reporting.tokens("TH"),
    ):
        assert (
            await reporting.client.post("/v1/admin/rebuild", headers=headers)
        ).status_code == 403
    admin = reporting.tokens.admin()
    assert (await reporting.client.get("/v1/admin/rebuild", headers=admin)).status_code == 404
    unknown = await reporting.client.get(f"/v1/admin/rebuild/{'0' * 32}", headers=admin)
    assert unknown.status_code == 404
    malformed = await reporting.client.get("/v1/admin/rebuild/x", headers=admin)
    assert malformed.status_code == 422
