"""Deliveries a consumer plans go to the running dispatcher in memory; polling catches the rest."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from bali_common.db import as_utc
from bali_devkit.testing.plugin import eventually
from bali_notifications.deliveries.models import DeliveryJob
from notification_harness import Harness, ServiceStarter, alert_raised, subscribe, unsubscribe
from notification_receivers import MailSink, WebhookReceiver


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def harness(notifications: ServiceStarter) -> AsyncIterator[Harness]:
    # The dispatcher runs, but would poll only once an hour: whatever is sent soon was
    # handed over.
    async with notifications.started(
        "handover", dispatch_in_background=True, dispatch_poll_interval_s=3600.0
    ) as harness:
        yield harness


def count_claims(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """Every poll the running dispatcher makes from now on (the time it claimed at)."""
    dispatcher = harness.parts.dispatcher
    claims: list[datetime] = []
    claim = dispatcher._claim

    async def counted(*, now: datetime, **kwargs: Any) -> list[DeliveryJob]:
        claims.append(now)
        return await claim(now=now, **kwargs)

    monkeypatch.setattr(dispatcher, "_claim", counted)
    return claims


async def test_a_planned_delivery_is_sent_without_waiting_for_a_poll(
    harness: Harness,
    webhook_receiver: WebhookReceiver,
    smtp_server: MailSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    claims = count_claims(harness, monkeypatch)
    subscription_id, endpoint = await subscribe(harness, "IOM", webhook_receiver)
    assert endpoint is not None
    try:
        payload = alert_raised(raised_by="PH", affected=["IOM"])
        alert_id = payload.alert.alert_id
        event = await harness.publish(payload, subject=alert_id)

        async def all_delivered() -> bool:
            deliveries = await harness.deliveries(source_event_id=str(event.id))
            return bool(deliveries) and all(d.status == "delivered" for d in deliveries)

        await eventually(all_delivered)
        [hook] = endpoint.requests
        assert hook.verified
        deliveries = await harness.deliveries(source_event_id=str(event.id))
        assert {d.channel for d in deliveries} == {"email", "inbox", "webhook"}
        assert all(d.claimed_by is None and d.attempt_count == 1 for d in deliveries)
        emails = [d.recipient for d in deliveries if d.channel == "email"]
        mails = smtp_server.for_alert(alert_id)
        assert sorted(r for m in mails for r in m.recipients) == sorted(emails)
        assert claims == [], "sent without a poll"
    finally:
        await unsubscribe(harness, "IOM", subscription_id)


async def test_a_lost_handover_is_sent_by_polling_once_its_lease_runs_out(
    harness: Harness, smtp_server: MailSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    dispatcher = harness.parts.dispatcher
    # As a crash right after the planning transaction committed: the jobs never arrive.
    monkeypatch.setattr(dispatcher, "hand_over", lambda jobs: None)
    payload = alert_raised(raised_by="PH", affected=["MY"])
    alert_id = payload.alert.alert_id
    event = await harness.publish(payload, subject=alert_id)
    # The consumer plans them all in one transaction: once one is there, all are.
    planned = await harness.planned(event, 1)
    assert all(
        d.status == "pending" and d.claimed_by == dispatcher.dispatcher_id for d in planned
    ), "claimed in the planning transaction"

    assert await harness.dispatch() == 0, "nobody sends while the lease runs"
    assert smtp_server.for_alert(alert_id) == []
    lease_end = max(as_utc(d.claimed_until) for d in planned if d.claimed_until is not None)
    assert await harness.dispatch(lease_end + timedelta(seconds=1)) == len(planned)

    deliveries = await harness.deliveries(source_event_id=str(event.id))
    assert all(d.status == "delivered" and d.attempt_count == 1 for d in deliveries)
    emails = sorted(d.recipient for d in deliveries if d.channel == "email")
    mails = smtp_server.for_alert(alert_id)
    assert sorted(r for m in mails for r in m.recipients) == emails, "each sent once"
