"""Deliveries on a driven clock: outage, 410, 429, 302, timeouts and SMTP refusals; the API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest_asyncio
from bali_common.db import as_utc, utcnow
from bali_common.events.alerts import Severity
from bali_common.messaging.outbox import OutboxMessage
from bali_notifications.deliveries.models import Delivery
from notification_harness import (
    RETRY_JITTER,
    RETRY_SCHEDULE,
    Harness,
    ServiceStarter,
    alert_raised,
    assert_delay_follows_schedule,
    due,
    reload,
)
from notification_receivers import Canary, Endpoint, MailSink, Reply, WebhookReceiver, free_port
from sqlmodel import col, select

DEAD_PORT = free_port()


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def harness(notifications: ServiceStarter) -> AsyncIterator[Harness]:
    async with notifications.started(
        "deliveries",
        also_allow=[f"127.0.0.1:{DEAD_PORT}"],
        delivery_retry_schedule_s=RETRY_SCHEDULE,
        delivery_retry_jitter=RETRY_JITTER,
        webhook_timeout_s=1.0,
    ) as harness:
        yield harness


@pytest_asyncio.fixture(loop_scope="session", autouse=True)
async def fresh_subscriptions(harness: Harness) -> AsyncIterator[None]:
    """Each test starts with no subscriptions: leftovers would match the next test's alerts."""
    yield
    admin = harness.tokens.admin()
    listed = await harness.client.get("/v1/subscriptions?page_size=200", headers=admin)
    for subscription in listed.json()["items"]:
        await harness.client.delete(f"/v1/subscriptions/{subscription['id']}", headers=admin)


async def hook_for(
    harness: Harness, member: str, endpoint: Endpoint | None = None, url: str | None = None
) -> str:
    response = await harness.client.post(
        "/v1/subscriptions",
        json={
            "name": "retry test",
            "channel": "webhook",
            "url": url or (endpoint.url if endpoint else ""),
            "member_ids": [member],
        },
        headers=harness.tokens(member),
    )
    assert response.status_code == 201, response.text
    if endpoint is not None:
        endpoint.secrets.append(response.json()["secret"])
    return str(response.json()["id"])


async def raise_alert(harness: Harness, member: str, **kwargs: Any) -> Delivery:
    """An alert raised by `member`; returns the planned delivery to `member`'s webhook."""
    payload = alert_raised(raised_by=member, affected=[], **kwargs)
    event = await harness.publish(payload, subject=payload.alert.alert_id)
    deliveries = await harness.planned(event, 6)
    [webhook] = [d for d in deliveries if d.channel == "webhook"]
    return webhook


async def staged_events(harness: Harness, delivery_id: str) -> list[dict[str, Any]]:
    async with harness.runtime.sessions() as session:
        rows = await session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.key == delivery_id)
            .order_by(col(OutboxMessage.id))
        )
        return [{"type": row.event_type, **json.loads(row.value)} for row in rows]


async def test_deliveries_are_listed_filtered_and_scoped_to_their_member(
    harness: Harness,
) -> None:
    payload = alert_raised(raised_by="MY", affected=["IOM"])
    alert_id = payload.alert.alert_id
    event = await harness.publish(payload, subject=alert_id)
    await harness.planned(event, 7)
    await harness.dispatch()
    ops = harness.tokens.ops()

    everything = await harness.client.get(f"/v1/deliveries?alert_id={alert_id}", headers=ops)
    assert everything.status_code == 200
    assert len(everything.json()["items"]) == 7
    emails = await harness.client.get(
        f"/v1/deliveries?alert_id={alert_id}&channel=email&status=delivered", headers=ops
    )
    assert len(emails.json()["items"]) == 4
    first_page = await harness.client.get(
        f"/v1/deliveries?alert_id={alert_id}&page_size=4", headers=ops
    )
    cursor = first_page.json()["next_cursor"]
    assert cursor
    second_page = await harness.client.get(
        f"/v1/deliveries?alert_id={alert_id}&page_size=4&cursor={cursor}", headers=ops
    )
    ids = [d["id"] for d in first_page.json()["items"] + second_page.json()["items"]]
    assert len(ids) == len(set(ids)) == 7
    assert second_page.json()["next_cursor"] is None

    own = await harness.client.get(
        f"/v1/deliveries?alert_id={alert_id}", headers=harness.tokens("IOM")
    )
    assert {d["member_id"] for d in own.json()["items"]} == {"IOM"}
    assert len(own.json()["items"]) == 2
    co_chair = await harness.client.get(
        f"/v1/deliveries?alert_id={alert_id}", headers=harness.tokens.co_chair("AU")
    )
    assert len(co_chair.json()["items"]) == 3
    iom_delivery = own.json()["items"][0]["id"]
    detail = await harness.client.get(
        f"/v1/deliveries/{iom_delivery}", headers=harness.tokens("IOM")
    )
    assert detail.status_code == 200
    [attempt] = detail.json()["attempts"]
    assert attempt["succeeded"] is True
    assert attempt["latency_ms"] is not None
    for missing in (iom_delivery, "no-such-delivery"):
        hidden = await harness.client.get(f"/v1/deliveries/{missing}", headers=harness.tokens("PH"))
        assert hidden.status_code == 404
    replay = await harness.client.post(f"/v1/deliveries/{iom_delivery}/replay", headers=ops)
    assert replay.status_code == 409, "a delivered notification is not replayed"
    anonymous = await harness.client.get("/v1/deliveries")
    assert anonymous.status_code == 401
    bad_cursor = await harness.client.get("/v1/deliveries?cursor=%%%", headers=ops)
    assert bad_cursor.status_code == 422


async def test_receiver_down_then_up_is_delivered_once_after_recovery_on_schedule(
    harness: Harness, webhook_receiver: WebhookReceiver
) -> None:
    endpoint = webhook_receiver.endpoint(default=Reply(503))
    await hook_for(harness, "PH", endpoint)
    delivery = await raise_alert(harness, "PH")
    clock = utcnow()
    attempted_at = [clock]
    await harness.dispatch(clock)
    for step in range(3):
        delivery = await reload(harness, delivery)
        assert delivery.status == "retrying"
        assert_delay_follows_schedule(attempted_at[-1], due(delivery), step)
        requests = len(endpoint.requests)
        await harness.dispatch(due(delivery) - timedelta(milliseconds=1))
        assert len(endpoint.requests) == requests, "nothing is sent before it is due"
        attempted_at.append(due(delivery))
        await harness.dispatch(due(delivery))
    delivery = await reload(harness, delivery)
    endpoint.default = Reply(200)
    await harness.dispatch(due(delivery) + timedelta(minutes=1))
    await harness.dispatch(due(delivery) + timedelta(days=2))

    delivery = await reload(harness, delivery)
    assert delivery.status == "delivered"
    assert len(endpoint.requests) == 5
    assert {hook.webhook_id for hook in endpoint.requests} == {delivery.id}
    assert endpoint.accepted_ids == {delivery.id}, "the receiver acted exactly once"
    detail = await harness.client.get(f"/v1/deliveries/{delivery.id}", headers=harness.tokens("PH"))
    attempts = detail.json()["attempts"]
    assert [a["status_code"] for a in attempts] == [503, 503, 503, 503, 200]
    assert [a["succeeded"] for a in attempts] == [False] * 4 + [True]
    assert all(a["latency_ms"] is not None for a in attempts)
    assert [datetime.fromisoformat(a["attempted_at"]) for a in attempts[:4]] == [
        as_utc(moment) for moment in attempted_at
    ]
    events = [e["type"] for e in await staged_events(harness, delivery.id)]
    assert events.count("notification.sent") == 5
    assert events.count("notification.failed") == 4
    assert events.count("notification.delivered") == 1


async def test_gone_410_disables_the_endpoint_until_re_enabled_and_replayed(
    harness: Harness, webhook_receiver: WebhookReceiver
) -> None:
    endpoint = webhook_receiver.endpoint(default=Reply(410))
    subscription_id = await hook_for(harness, "MY", endpoint)
    delivery = await raise_alert(harness, "MY", severity=Severity.severe)
    disabled_before = await harness.metric("bali_notification_endpoints_disabled_total")
    await harness.dispatch()
    delivery = await reload(harness, delivery)
    assert delivery.status == "failed"
    assert delivery.next_attempt_at is None
    assert delivery.last_status_code == 410
    shown = await harness.client.get(
        f"/v1/subscriptions/{subscription_id}", headers=harness.tokens("MY")
    )
    assert shown.json()["enabled"] is False
    assert "410" in shown.json()["disabled_reason"]
    assert await harness.metric("bali_notification_endpoints_disabled_total") == disabled_before + 1
    [exhausted] = [
        e
        for e in await staged_events(harness, delivery.id)
        if e["type"] == "notification.exhausted"
    ]
    assert exhausted["reason"] == "endpoint_disabled"
    assert exhausted["operator_warning"] is False

    payload = alert_raised(raised_by="MY", affected=[])
    later = await harness.publish(payload, subject=payload.alert.alert_id)
    planned = await harness.planned(later, 5)
    assert "webhook" not in {d.channel for d in planned}, "a disabled endpoint gets nothing new"
    await harness.dispatch(utcnow() + timedelta(days=3))
    assert len(endpoint.requests) == 1

    refused = await harness.client.post(
        f"/v1/deliveries/{delivery.id}/replay", headers=harness.tokens("MY")
    )
    assert refused.status_code == 409
    version = shown.headers["ETag"]
    enabled = await harness.client.patch(
        f"/v1/subscriptions/{subscription_id}",
        json={"enabled": True},
        headers={**harness.tokens("MY"), "If-Match": version},
    )
    assert enabled.status_code == 200
    endpoint.default = Reply(204)
    replayed = await harness.client.post(
        f"/v1/deliveries/{delivery.id}/replay", headers=harness.tokens("MY")
    )
    assert replayed.status_code == 202
    assert replayed.json()["status"] == "pending"
    await harness.dispatch()
    delivery = await reload(harness, delivery)
    assert delivery.status == "delivered"
    assert delivery.attempt_count == 2


async def test_429_waits_at_least_retry_after(
    harness: Harness, webhook_receiver: WebhookReceiver
) -> None:
    endpoint = webhook_receiver.endpoint(replies=[Reply(429, {"Retry-After": "120"})])
    await hook_for(harness, "IOM", endpoint)
    delivery = await raise_alert(harness, "IOM")
    clock = utcnow()
    await harness.dispatch(clock)
    delivery = await reload(harness, delivery)
    assert delivery.status == "retrying"
    assert delivery.last_status_code == 429
    assert due(delivery) >= clock + timedelta(seconds=120), "not the 5 s schedule step"
    await harness.dispatch(clock + timedelta(seconds=119))
    assert len(endpoint.requests) == 1
    await harness.dispatch(due(delivery))
    delivery = await reload(harness, delivery)
    assert delivery.status == "delivered"
    assert len(endpoint.requests) == 2


async def test_302_counts_as_failure_and_is_never_followed(
    harness: Harness, webhook_receiver: WebhookReceiver, canary: Canary
) -> None:
    endpoint = webhook_receiver.endpoint(
        default=Reply(302, {"Location": f"http://127.0.0.1:{canary.port}/elsewhere"})
    )
    subscription_id = await hook_for(harness, "AU", endpoint)
    payload = alert_raised(raised_by="AU", affected=[], severity=Severity.severe)
    event = await harness.publish(payload, subject=payload.alert.alert_id)
    deliveries = await harness.planned(event, 6)
    [delivery] = [d for d in deliveries if d.subscription_id == subscription_id]
    before = canary.connections
    await harness.dispatch()
    delivery = await reload(harness, delivery)
    assert delivery.status == "retrying"
    assert delivery.last_status_code == 302
    assert delivery.last_error is not None
    assert "redirect not followed" in delivery.last_error
    assert len(endpoint.requests) == 1
    assert canary.connections == before == 0


async def test_extreme_alert_that_keeps_failing_warns_operators_then_is_dead_lettered(
    harness: Harness, webhook_receiver: WebhookReceiver
) -> None:
    endpoint = webhook_receiver.endpoint(default=Reply(500))
    await hook_for(harness, "ID", endpoint)
    delivery = await raise_alert(harness, "ID", severity=Severity.extreme)
    warnings_before = await harness.metric("bali_notification_operator_warnings_total")
    clock = utcnow()
    first = clock
    await harness.dispatch(clock)
    for step in range(len(RETRY_SCHEDULE)):
        delivery = await reload(harness, delivery)
        assert delivery.status == "retrying"
        assert_delay_follows_schedule(clock, due(delivery), step)
        assert delivery.operator_warning == (step + 1 >= 3)
        clock = due(delivery)
        await harness.dispatch(clock)
    delivery = await reload(harness, delivery)
    assert delivery.status == "exhausted"
    assert delivery.attempt_count == len(RETRY_SCHEDULE) + 1 == 8
    span = (clock - first).total_seconds()
    assert (
        sum(RETRY_SCHEDULE) * (1 - RETRY_JITTER) <= span <= sum(RETRY_SCHEDULE) * (1 + RETRY_JITTER)
    )
    assert span > 20 * 3600, "retries cover about a day"

    events = await staged_events(harness, delivery.id)
    failed = [e for e in events if e["type"] == "notification.failed"]
    assert [e["operator_warning"] for e in failed] == [
        False,
        False,
        True,
        False,
        False,
        False,
        False,
    ]
    [exhausted] = [e for e in events if e["type"] == "notification.exhausted"]
    assert exhausted["operator_warning"] is True
    assert exhausted["reason"] == "retries_exhausted"
    assert exhausted["severity"] == "Extreme"
    assert exhausted["attempt"] == 8
    assert await harness.metric("bali_notification_operator_warnings_total") == warnings_before + 2

    flagged = await harness.client.get(
        "/v1/deliveries?status=exhausted&operator_warning=true",
        headers=harness.tokens.ops(),
    )
    assert delivery.id in [d["id"] for d in flagged.json()["items"]]

    _, published = await harness.relayed_notifications()
    dashboard = [
        e
        for e in published
        if e.type == "notification.exhausted" and e.data["delivery_id"] == delivery.id
    ]
    assert len(dashboard) == 1
    assert dashboard[0].data["operator_warning"] is True

    endpoint.default = Reply(200)
    replayed = await harness.client.post(
        f"/v1/deliveries/{delivery.id}/replay",
        headers=harness.tokens.ops(),
    )
    assert replayed.status_code == 202
    await harness.dispatch(clock + timedelta(minutes=1))
    delivery = await reload(harness, delivery)
    assert delivery.status == "delivered"
    assert delivery.attempt_count == 9
    assert endpoint.accepted_ids == {delivery.id}


async def test_smtp_permanent_refusal_fails_and_temporary_one_retries(
    harness: Harness, smtp_server: MailSink
) -> None:
    smtp_server.refusals["mei@my.example.org"] = "550 5.1.1 Mailbox unavailable"
    smtp_server.refusals["paolo@ph.example.org"] = "451 4.3.0 Try again later"
    try:
        payload = alert_raised(raised_by="IOM", affected=["MY", "PH"])
        event = await harness.publish(payload, subject=payload.alert.alert_id)
        deliveries = await harness.planned(event, 9)
        await harness.dispatch()
        by_recipient = {
            d.recipient: d for d in await harness.deliveries(source_event_id=str(event.id))
        }
        refused = by_recipient["mei@my.example.org"]
        assert refused.status == "failed"
        assert refused.last_status_code == 550
        assert refused.operator_warning, "an Extreme alert that cannot reach a focal point"
        delayed = by_recipient["paolo@ph.example.org"]
        assert delayed.status == "retrying"
        assert delayed.last_status_code == 451
        assert by_recipient["ana@au.example.org"].status == "delivered"
        assert len(deliveries) == 9
    finally:
        smtp_server.refusals.clear()
    await harness.dispatch(due(delayed))
    delayed = await reload(harness, delayed)
    assert delayed.status == "delivered"
    assert len(smtp_server.messages(header="X-Bali-Delivery-Id", value=delayed.id)) == 1


async def test_unreachable_and_slow_receivers_fail_without_holding_up_others(
    harness: Harness, webhook_receiver: WebhookReceiver
) -> None:
    slow = webhook_receiver.endpoint(default=Reply(204, delay_s=3.0))
    fast = webhook_receiver.endpoint()
    await hook_for(harness, "IOM", slow)
    await hook_for(harness, "IOM", fast)
    await hook_for(harness, "IOM", url=f"http://127.0.0.1:{DEAD_PORT}/hook")
    payload = alert_raised(raised_by="IOM", affected=[])
    event = await harness.publish(payload, subject=payload.alert.alert_id)
    deliveries = await harness.planned(event, 8)
    await harness.dispatch()
    hooks = {
        d.subscription_id: d
        for d in await harness.deliveries(source_event_id=str(event.id))
        if d.channel == "webhook"
    }
    assert len(hooks) == 3
    by_outcome = sorted((d.status, d.last_status_code, d.last_error or "") for d in hooks.values())
    assert by_outcome[0] == ("delivered", 204, "")
    timed_out = [d for d in hooks.values() if "timed out" in (d.last_error or "")]
    refused = [d for d in hooks.values() if "Connect" in (d.last_error or "")]
    assert len(timed_out) == len(refused) == 1
    assert timed_out[0].status == refused[0].status == "retrying"
    assert refused[0].last_status_code is None
    assert len(fast.requests) == 1
    assert len(deliveries) == 8
