"""The dispatcher across its own restarts and stops: claims taken back, sends under way kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest_asyncio
from bali_common.db import utcnow
from bali_devkit.testing.plugin import eventually
from bali_notifications.deliveries.models import Delivery
from notification_harness import (
    Harness,
    ServiceStarter,
    alert_raised,
    reload,
    subscribe,
    unsubscribe,
)
from notification_receivers import Reply, WebhookReceiver
from sqlalchemy import update
from sqlmodel import col


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def harness(notifications: ServiceStarter) -> AsyncIterator[Harness]:
    async with notifications.started("dispatcher", webhook_timeout_s=5.0) as harness:
        yield harness


async def _planned_deliveries(harness: Harness) -> list[Delivery]:
    payload = alert_raised(raised_by="PH", affected=["IOM"])
    event = await harness.publish(payload, subject=payload.alert.alert_id)
    await harness.planned(event, 1)
    await asyncio.sleep(0.5)  # the consumer plans them all in one transaction
    return await harness.deliveries(source_event_id=str(event.id))


async def test_a_restarted_dispatcher_takes_back_its_own_claims_and_only_those(
    harness: Harness,
) -> None:
    deliveries = await _planned_deliveries(harness)
    assert len(deliveries) >= 2
    dispatcher = harness.parts.dispatcher
    others, *ours = deliveries
    later = utcnow() + timedelta(hours=1)
    async with harness.runtime.sessions() as session:
        # As a crash leaves them: claimed by this dispatcher's previous life, and one
        # by another replica, leases running.
        await session.exec(
            update(Delivery)
            .where(col(Delivery.id).in_([d.id for d in ours]))
            .values(claimed_by=dispatcher.dispatcher_id, claimed_until=later)
        )
        await session.exec(
            update(Delivery)
            .where(col(Delivery.id) == others.id)
            .values(claimed_by="another-host:notifications:dispatcher", claimed_until=later)
        )
        await session.commit()
    assert await harness.dispatch() == 0, "every lease still runs"
    assert await dispatcher.take_back_own_claims() == len(ours)
    assert await harness.dispatch() == len(ours)
    assert (await reload(harness, others)).claimed_by == "another-host:notifications:dispatcher"


async def test_a_stopping_dispatcher_lets_the_send_under_way_record_its_outcome(
    harness: Harness, webhook_receiver: WebhookReceiver
) -> None:
    subscription_id, endpoint = await subscribe(harness, "IOM", webhook_receiver)
    assert endpoint is not None
    endpoint.default = Reply(status=204, delay_s=1.5)
    try:
        deliveries = await _planned_deliveries(harness)
        [webhook] = [d for d in deliveries if d.channel == "webhook"]
        async with harness.dispatcher_with(
            dispatch_in_background=True, dispatch_poll_interval_s=0.05
        ) as dispatcher:
            running = asyncio.create_task(dispatcher.run())

            async def received() -> bool:
                return len(endpoint.requests) == 1

            await eventually(received)
            running.cancel()  # the stop, while the receiver is still answering
            await asyncio.gather(running, return_exceptions=True)
        recorded = await reload(harness, webhook)
        assert recorded.status == "delivered"
        assert recorded.claimed_by is None
        assert len(endpoint.requests) == 1
    finally:
        await unsubscribe(harness, "IOM", subscription_id)
