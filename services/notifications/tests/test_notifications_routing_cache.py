"""Planning reads the directory and subscriptions from memory, never staler than the database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from bali_common.db import transaction
from bali_common.events import CloudEvent
from bali_common.events.members import FocalPointData, MemberKind, MemberUpdated
from bali_notifications import directory, planning
from bali_notifications.deliveries.models import Delivery
from bali_notifications.directory import MemberEntry
from notification_harness import (
    Harness,
    ServiceStarter,
    alert_raised,
    focal_point,
    subscribe,
    unsubscribe,
)
from notification_receivers import WebhookReceiver
from sqlalchemy import update
from sqlmodel import col, select


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def harness(notifications: ServiceStarter) -> AsyncIterator[Harness]:
    async with notifications.started("routing-cache") as harness:
        yield harness


async def _planned_recipients(harness: Harness, affected: str) -> set[str]:
    payload = alert_raised(raised_by="PH", affected=[affected])
    event = await harness.publish(payload, subject=payload.alert.alert_id)
    await harness.planned(event, 1)
    return {d.recipient for d in await harness.deliveries(source_event_id=str(event.id))}


async def test_a_directory_change_event_invalidates_the_cache_before_the_next_alert(
    harness: Harness,
) -> None:
    cache = harness.parts.routing
    assert "mei@my.example.org" in await _planned_recipients(harness, "MY")
    assert cache.holds
    misses = cache.misses

    await harness.add_focal_points("MY", focal_point("MY", "nadia"))
    assert not cache.holds, "the member event invalidated it"
    assert "nadia@my.example.org" in await _planned_recipients(harness, "MY")
    assert cache.misses == misses + 1

    hits = cache.hits
    assert "nadia@my.example.org" in await _planned_recipients(harness, "MY")
    assert cache.hits == hits + 1, "nothing changed since: answered from memory"


async def test_a_change_another_replica_made_is_seen_at_the_next_alert(harness: Harness) -> None:
    cache = harness.parts.routing
    assert "ines@iom.example.org" in await _planned_recipients(harness, "IOM")
    entry = await harness.member("IOM")
    assert entry is not None
    # Written as another replica's consumer would: nothing in this process hears of it.
    point = focal_point("IOM", "omar").model_dump(mode="json")
    async with transaction(harness.runtime.sessions) as session:
        await session.exec(
            update(MemberEntry)
            .where(col(MemberEntry.member_id) == "IOM")
            .values(version=entry.version + 1, focal_points=[*entry.focal_points, point])
        )
    assert cache.holds
    misses = cache.misses
    assert "omar@iom.example.org" in await _planned_recipients(harness, "IOM")
    assert cache.misses == misses + 1


async def test_a_subscription_deleted_is_not_planned_for_from_memory(
    harness: Harness, webhook_receiver: WebhookReceiver
) -> None:
    subscription_id, _ = await subscribe(harness, "IOM", webhook_receiver)
    assert subscription_id in await _planned_recipients(harness, "IOM")
    await unsubscribe(harness, "IOM", subscription_id)
    assert not harness.parts.routing.holds
    assert subscription_id not in await _planned_recipients(harness, "IOM")


async def test_a_directory_change_rolled_back_is_never_kept_nor_planned_from(
    harness: Harness,
) -> None:
    cache = harness.parts.routing
    assert "mei@my.example.org" in await _planned_recipients(harness, "MY")
    assert cache.holds
    entry = await harness.member("MY")
    assert entry is not None
    ghost = focal_point("MY", "ghost")
    snapshot = MemberUpdated(
        member_id=entry.member_id,
        name=entry.name,
        kind=MemberKind(entry.kind),
        is_co_chair=entry.is_co_chair,
        active=entry.active,
        focal_points=[*(FocalPointData.model_validate(p) for p in entry.focal_points), ghost],
        version=entry.version + 1,
    )
    payload = alert_raised(raised_by="PH", affected=["MY"])
    event = CloudEvent.of(payload, source="/bali/test-upstream", subject="rollback")
    async with harness.runtime.sessions() as session:
        # Any writer of the directory, not only the consumer's member handler.
        assert await directory.apply_snapshot(session=session, snapshot=snapshot)
        await planning.plan_for_alert(
            session=session,
            event=event,
            payload=payload,
            senders=harness.parts.senders,
            cache=cache,
        )
        planned = await session.exec(
            select(Delivery.recipient).where(Delivery.source_event_id == str(event.id))
        )
        assert "ghost@my.example.org" in planned.all(), "its own change is planned with"
        assert not cache.holds, "what it has not committed is kept for nobody"
        await session.rollback()
    assert not cache.holds
    assert "ghost@my.example.org" not in await _planned_recipients(harness, "MY")
