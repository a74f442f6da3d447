"""The running service: it delivers by itself, and its notification.* events reach the topic."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from bali_devkit.testing.plugin import eventually
from notification_harness import Harness, ServiceStarter, alert_raised
from notification_receivers import MailSink, WebhookReceiver


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def harness(notifications: ServiceStarter) -> AsyncIterator[Harness]:
    async with notifications.started(
        "app",
        dispatch_in_background=True,
        # Long enough that only the after-commit wake-up can explain a prompt delivery.
        dispatch_poll_interval_s=60.0,
    ) as harness:
        yield harness


async def test_raised_alert_is_emailed_and_stored_in_inboxes_without_manual_dispatch(
    harness: Harness, smtp_server: MailSink, webhook_receiver: WebhookReceiver
) -> None:
    emails_before = await harness.metric('bali_notification_attempts_total{channel="email"')
    endpoint = webhook_receiver.endpoint()
    created = await harness.client.post(
        "/v1/subscriptions",
        json={"name": "live", "channel": "webhook", "url": endpoint.url},
        headers=harness.tokens("IOM"),
    )
    endpoint.secrets.append(created.json()["secret"])
    payload = alert_raised(raised_by="PH", affected=["IOM"])
    event = await harness.publish(payload, subject=payload.alert.alert_id)

    async def all_delivered() -> bool:
        deliveries = await harness.deliveries(source_event_id=str(event.id))
        return len(deliveries) == 8 and {d.status for d in deliveries} == {"delivered"}

    await eventually(all_delivered, timeout=30)
    assert len(smtp_server.for_alert(payload.alert.alert_id)) == 4
    assert len(endpoint.requests) == 1
    assert endpoint.requests[0].verified
    inbox = await harness.client.get("/v1/inbox", headers=harness.tokens("IOM"))
    assert payload.alert.alert_id in [i["alert_id"] for i in inbox.json()["items"]]
    emails = await harness.metric('bali_notification_attempts_total{channel="email"')
    assert emails - emails_before == 4
    deleted = await harness.client.delete(
        f"/v1/subscriptions/{created.json()['id']}", headers=harness.tokens("IOM")
    )
    assert deleted.status_code == 204


async def test_notification_events_reach_the_notifications_topic(harness: Harness) -> None:
    staged, events = await harness.relayed_notifications()
    assert len(events) == staged
    assert {e.type for e in events} == {"notification.sent", "notification.delivered"}
    assert all(e.source == "/bali/notifications" for e in events)
