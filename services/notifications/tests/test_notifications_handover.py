"""Webhooks and inbox items a consumer plans go to the running dispatcher in memory; emails go
by the poll the planning commit wakes; polling catches the rest."""

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


def count_claims(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The channel of every delivery a poll of the running dispatcher claims from now on."""
    dispatcher = harness.parts.dispatcher
    claims: list[str] = []
    claim = dispatcher._claim

    async def counted(*, now: datetime, **kwargs: Any) -> list[DeliveryJob]:
        jobs = await claim(now=now, **kwargs)
        claims.extend(job.delivery.channel for job in jobs)
        return jobs

    monkeypatch.setattr(dispatcher, "_claim", counted)
    return claims


async def test_planned_webhooks_and_inbox_items_are_sent_without_a_poll_emails_by_one(
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
        # A mail server cannot drop a repeat: emails are claimed only by the dispatcher
        # about to send them, by the poll their planning commit woke.
        assert sorted(claims) == ["email"] * len(emails), "webhook and inbox sent without a poll"
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
    handed = [d for d in planned if d.channel != "email"]
    assert handed
    assert all(
        d.status == "pending" and d.claimed_by == dispatcher.dispatcher_id for d in handed
    ), "claimed in the planning transaction"
    emails_planned = [d for d in planned if d.channel == "email"]

    async def emails_sent() -> bool:
        deliveries = await harness.deliveries(source_event_id=str(event.id))
        return all(d.status == "delivered" for d in deliveries if d.channel == "email")

    # Emails were never handed over: the poll the commit woke sends them.
    await eventually(emails_sent)
    assert await harness.dispatch() == 0, "nobody sends the rest while the lease runs"
    lease_end = max(as_utc(d.claimed_until) for d in handed if d.claimed_until is not None)
    assert await harness.dispatch(lease_end + timedelta(seconds=1)) == len(handed)
    assert emails_planned, "the affected member's focal point is emailed"

    deliveries = await harness.deliveries(source_event_id=str(event.id))
    assert all(d.status == "delivered" and d.attempt_count == 1 for d in deliveries)
    emails = sorted(d.recipient for d in deliveries if d.channel == "email")
    mails = smtp_server.for_alert(alert_id)
    assert sorted(r for m in mails for r in m.recipients) == emails, "each sent once"
