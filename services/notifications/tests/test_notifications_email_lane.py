"""Email has its own lane of sends: a slow SMTP server never holds up a webhook."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller
from bali_devkit.testing.plugin import eventually
from notification_harness import Harness, ServiceStarter, alert_raised, subscribe, unsubscribe
from notification_receivers import MailSink, WebhookReceiver, free_port

#: How long the slow server takes to answer each message's data.
SMTP_DELAY_S = 4.0


class SlowMailSink(MailSink):
    """A real SMTP server that takes its time over every message before accepting it."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        await asyncio.sleep(self.delay_s)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture(scope="module")
def slow_smtp() -> Iterator[SlowMailSink]:
    sink = SlowMailSink(SMTP_DELAY_S)
    sink.port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def harness(notifications: ServiceStarter, slow_smtp: SlowMailSink) -> AsyncIterator[Harness]:
    # Fewer slots than the alert has emails: one shared pool would fill with them.
    async with notifications.started(
        "email-lane",
        smtp_port=slow_smtp.port,
        smtp_timeout_s=10.0,
        dispatch_in_background=True,
        dispatch_concurrency=2,
        dispatch_email_concurrency=1,
    ) as harness:
        yield harness


async def test_a_webhook_is_not_held_up_by_a_slow_smtp_server(
    harness: Harness, webhook_receiver: WebhookReceiver, slow_smtp: SlowMailSink
) -> None:
    # A first alert's emails take the slow server's time (more of them than any lane has).
    first = alert_raised(raised_by="PH", affected=["IOM"])
    first_event = await harness.publish(first, subject=first.alert.alert_id)
    first_planned = await harness.planned(first_event, 1)
    assert len([d for d in first_planned if d.channel == "email"]) > 2
    subscription_id, endpoint = await subscribe(harness, "IOM", webhook_receiver)
    assert endpoint is not None
    try:
        payload = alert_raised(raised_by="PH", affected=["IOM"])
        event = await harness.publish(payload, subject=payload.alert.alert_id)

        async def received() -> bool:
            return len(endpoint.requests) == 1

        await eventually(received)
        assert slow_smtp.messages() == [], "the webhook went before any email was accepted"

        async def webhook_recorded() -> bool:
            [webhook] = await harness.deliveries(source_event_id=str(event.id), channel="webhook")
            return webhook.status == "delivered"

        await eventually(webhook_recorded)
        emails = await harness.deliveries(source_event_id=str(event.id), channel="email")
        assert emails
        assert all(d.status == "pending" for d in emails)
    finally:
        await unsubscribe(harness, "IOM", subscription_id)
