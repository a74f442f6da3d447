"""Alerts reach the people who must act, exactly once: rule recipients, subscriptions, channels."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from bali_common.auth import Role
from bali_common.db import transaction, utcnow
from bali_common.events.alerts import (
    AlertAcknowledged,
    AlertEscalated,
    AlertStatus,
    Sensitivity,
    Severity,
)
from bali_common.links import ACKNOWLEDGE_LINK_PURPOSE, verify_link_token
from bali_common.messaging.outbox import OutboxMessage
from bali_common.testing.plugin import eventually, serving
from bali_notifications import planning
from bali_notifications.deliveries.models import Delivery
from notification_harness import (
    Endpoint,
    Harness,
    MailSink,
    ServiceStarter,
    WebhookReceiver,
    activity_created,
    alert_raised,
    free_port,
)
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from standardwebhooks import Webhook

CO_CHAIR_FOCAL_POINTS = {"ana@au.example.org", "ben@au.example.org", "dewi@id.example.org"}
LINK = re.compile(r"http://127\.0\.0\.1:8002/v1/alerts/(?P<alert>[^/]+)/acknowledge\?token=(\S+)")


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def harness(notifications: ServiceStarter) -> AsyncIterator[Harness]:
    async with notifications.started("alerts") as harness:
        yield harness


async def subscribe(
    harness: Harness,
    member: str,
    receiver: WebhookReceiver | None = None,
    **body: Any,
) -> tuple[str, Endpoint | None]:
    """A subscription through the API; webhooks get their own receiver endpoint and secret."""
    endpoint = receiver.endpoint() if receiver is not None else None
    document = {"name": f"{member} subscription", "channel": "webhook", **body}
    if endpoint is not None:
        document["url"] = endpoint.url
    response = await harness.client.post(
        "/v1/subscriptions", json=document, headers=harness.tokens(member)
    )
    assert response.status_code == 201, response.text
    created = response.json()
    if endpoint is not None:
        endpoint.secrets.append(created["secret"])
    return created["id"], endpoint


async def unsubscribe(harness: Harness, member: str, *subscription_ids: str) -> None:
    for subscription_id in subscription_ids:
        response = await harness.client.delete(
            f"/v1/subscriptions/{subscription_id}", headers=harness.tokens(member)
        )
        assert response.status_code == 204


async def test_alert_raised_gives_one_email_per_co_chair_focal_point_and_one_webhook_per_match(
    harness: Harness, smtp_server: MailSink, webhook_receiver: WebhookReceiver
) -> None:
    ph_all, ph_hook = await subscribe(
        harness, "PH", webhook_receiver, event_types=["alert.*"], severities=["Extreme"]
    )
    iom_item, iom_hook = await subscribe(harness, "IOM", webhook_receiver, item_numbers=[11])
    my_minor, my_hook = await subscribe(harness, "MY", webhook_receiver, severities=["Minor"])
    iom_other, other_hook = await subscribe(harness, "IOM", webhook_receiver, member_ids=["ID"])
    iom_acts, acts_hook = await subscribe(
        harness, "IOM", webhook_receiver, event_types=["activity.*"]
    )
    payload = alert_raised(severity=Severity.extreme, raised_by="PH", affected=["MY"])
    alert_id = payload.alert.alert_id
    event = await harness.publish(payload, subject=alert_id)
    # 3 co-chair focal points + 1 affected focal point, 3 inboxes, 2 matching webhooks.
    deliveries = await harness.planned(event, 9)
    assert len(deliveries) == 9
    await harness.dispatch()

    mails = smtp_server.for_alert(alert_id)
    recipients = sorted(r for mail in mails for r in mail.recipients)
    assert recipients == sorted([*CO_CHAIR_FOCAL_POINTS, "mei@my.example.org"])
    now = utcnow()
    for mail in mails:
        assert mail.message["Subject"] == f"[EXTREME] Alert raised: {payload.alert.title}"
        assert mail.message.get_content_type() == "multipart/alternative"
        assert "An overloaded vessel is taking on water." in mail.text
        assert "<table>" in mail.html
        links = LINK.findall(mail.text)
        if mail.recipients[0] in CO_CHAIR_FOCAL_POINTS:
            [(linked_alert, token)] = links
            assert linked_alert == alert_id
            claims = verify_link_token(
                harness.settings.link_signing_secret,
                token,
                purpose=ACKNOWLEDGE_LINK_PURPOSE,
                now=now,
            )
            assert claims.subject == alert_id
            assert claims.recipient == mail.recipients[0]
            assert claims.expires_at > (now + timedelta(hours=23)).timestamp()
            assert token in mail.html
        else:
            assert links == []

    for endpoint in (ph_hook, iom_hook):
        assert endpoint is not None
        [hook] = endpoint.requests
        assert hook.verified, "signature checked by the standardwebhooks package"
        assert hook.payload["type"] == "alert.raised"
        assert hook.payload["event_id"] == str(event.id)
        assert hook.payload["data"]["alert"]["alert_id"] == alert_id
        assert hook.headers["content-type"] == "application/json"
    for endpoint in (my_hook, other_hook, acts_hook):
        assert endpoint is not None
        assert endpoint.requests == []

    settled = await harness.deliveries(source_event_id=str(event.id))
    assert {d.status for d in settled} == {"delivered"}
    assert {d.attempt_count for d in settled} == {1}
    assert sorted(d.recipient for d in settled if d.channel == "inbox") == [
        "member:AU",
        "member:ID",
        "member:MY",
    ]
    async with harness.runtime.sessions() as session:
        staged = (
            await session.exec(
                select(OutboxMessage.event_type, OutboxMessage.key).where(
                    col(OutboxMessage.key).in_([d.id for d in settled])
                )
            )
        ).all()
    assert sorted(t for t, _ in staged).count("notification.delivered") == 9
    assert sorted(t for t, _ in staged).count("notification.sent") == 9
    await unsubscribe(harness, "PH", ph_all)
    await unsubscribe(harness, "IOM", iom_item, iom_other, iom_acts)
    await unsubscribe(harness, "MY", my_minor)


async def test_same_event_delivered_twice_by_kafka_notifies_once(
    harness: Harness, smtp_server: MailSink, webhook_receiver: WebhookReceiver
) -> None:
    sub_id, endpoint = await subscribe(harness, "IOM", webhook_receiver, member_ids=["IOM"])
    assert endpoint is not None
    duplicates = harness.runtime.metrics.events_duplicate.labels("notifications.alerts")
    before = duplicates._value.get()
    payload = alert_raised(raised_by="IOM", affected=["PH"])
    event = await harness.publish(payload, subject=payload.alert.alert_id)
    await harness.publish(payload, subject=payload.alert.alert_id, event=event)
    await eventually(lambda: _greater(duplicates._value.get(), before))
    deliveries = await harness.planned(event, 8)
    await harness.dispatch()
    await harness.dispatch()

    assert len(deliveries) == 8
    mails = smtp_server.for_alert(payload.alert.alert_id)
    assert sorted(r for m in mails for r in m.recipients) == sorted(
        [*CO_CHAIR_FOCAL_POINTS, "paolo@ph.example.org"]
    )
    assert len(endpoint.requests) == 1

    # Even if the inbox were bypassed, planning the same event again adds nothing ...
    async with transaction(harness.runtime.sessions) as session:
        added = await planning.plan_for_alert(
            session=session, event=event, payload=payload, senders=harness.parts.senders
        )
    assert added == 0
    # ... and the database refuses a second row for the same (event, recipient, channel).
    with pytest.raises(IntegrityError):
        async with transaction(harness.runtime.sessions) as session:
            session.add(
                Delivery(
                    source_event_id=str(event.id),
                    event_type=event.type,
                    channel="email",
                    recipient="paolo@ph.example.org",
                    reason="affected_member",
                )
            )
    await unsubscribe(harness, "IOM", sub_id)


async def _greater(value: float, than: float) -> bool:
    return value > than


async def test_restricted_alert_reaches_only_co_chairs_raiser_and_affected_subscribers(
    harness: Harness, smtp_server: MailSink, webhook_receiver: WebhookReceiver
) -> None:
    raiser, raiser_hook = await subscribe(harness, "PH", webhook_receiver)
    affected, affected_hook = await subscribe(harness, "MY", webhook_receiver)
    co_chair, co_chair_hook = await subscribe(harness, "AU", webhook_receiver)
    outsider, outsider_hook = await subscribe(harness, "IOM", webhook_receiver)
    platform = await harness.client.post(
        "/v1/subscriptions",
        json={"name": "platform-wide", "channel": "inbox"},
        headers=harness.tokens.admin(),
    )
    assert platform.status_code == 201
    assert platform.json()["member_id"] is None
    payload = alert_raised(sensitivity=Sensitivity.restricted, raised_by="PH", affected=["MY"])
    event = await harness.publish(payload, subject=payload.alert.alert_id)
    deliveries = await harness.planned(event, 10)
    await harness.dispatch()

    assert all(h is not None for h in (raiser_hook, affected_hook, co_chair_hook, outsider_hook))
    assert len(raiser_hook.requests) == 1  # type: ignore[union-attr]
    assert len(affected_hook.requests) == 1  # type: ignore[union-attr]
    assert len(co_chair_hook.requests) == 1  # type: ignore[union-attr]
    assert outsider_hook.requests == []  # type: ignore[union-attr]
    assert "user:platform-admin" not in {d.recipient for d in deliveries}
    assert "IOM" not in {d.member_id for d in deliveries}
    assert len(smtp_server.for_alert(payload.alert.alert_id)) == 4
    await unsubscribe(harness, "PH", raiser)
    await unsubscribe(harness, "MY", affected)
    await unsubscribe(harness, "AU", co_chair)
    await unsubscribe(harness, "IOM", outsider)
    await harness.client.delete(
        f"/v1/subscriptions/{platform.json()['id']}",
        headers=harness.tokens.admin(),
    )


async def test_escalation_widens_to_senior_officials_only_when_asked(
    harness: Harness, smtp_server: MailSink
) -> None:
    raised = alert_raised(raised_by="IOM", affected=["PH"])
    alert_id = raised.alert.alert_id
    escalated_summary = raised.alert.model_copy(
        update={"version": 2, "status": AlertStatus.escalated, "escalation_level": 1}
    )
    quiet = AlertEscalated(
        alert=escalated_summary,
        actor=raised.actor,
        occurred_at=utcnow(),
        level=1,
        reason="unacknowledged_timeout",
    )
    wide = AlertEscalated(
        alert=escalated_summary.model_copy(update={"version": 3, "escalation_level": 2}),
        actor=raised.actor,
        occurred_at=utcnow(),
        level=2,
        reason="unacknowledged_timeout",
        notify_senior_officials=True,
    )
    acknowledged = AlertAcknowledged(
        alert=escalated_summary.model_copy(
            update={"version": 4, "status": AlertStatus.acknowledged}
        ),
        actor=raised.actor,
        occurred_at=utcnow(),
        via_link=True,
    )
    quiet_event = await harness.publish(quiet, subject=alert_id)
    wide_event = await harness.publish(wide, subject=alert_id)
    ack_event = await harness.publish(acknowledged, subject=alert_id)
    await harness.planned(quiet_event, 6)
    await harness.planned(wide_event, 8)
    await harness.planned(ack_event, 6)
    await harness.dispatch()

    def recipients(event_type: str) -> list[str]:
        return sorted(
            r
            for m in smtp_server.for_alert(alert_id)
            if m.message["X-Bali-Event-Type"] == event_type
            for r in m.recipients
        )

    officials = {"senior@au.example.org", "senior@id.example.org"}
    base = sorted([*CO_CHAIR_FOCAL_POINTS, "paolo@ph.example.org"])
    escalations = [
        m
        for m in smtp_server.for_alert(alert_id)
        if m.message["X-Bali-Event-Type"] == "alert.escalated"
    ]
    assert recipients("alert.escalated") == sorted(base + base + sorted(officials))
    level_two = [m for m in escalations if "(level 2)" in m.message["Subject"]]
    assert {r for m in level_two for r in m.recipients} >= officials
    for mail in escalations:
        has_link = bool(LINK.search(mail.text))
        assert has_link == (mail.recipients[0] in CO_CHAIR_FOCAL_POINTS)
    acknowledgements = [
        m
        for m in smtp_server.for_alert(alert_id)
        if m.message["X-Bali-Event-Type"] == "alert.acknowledged"
    ]
    assert len(acknowledgements) == 4
    assert not any(LINK.search(m.text) for m in acknowledgements), "nothing left to acknowledge"


async def test_activity_events_go_one_by_one_or_as_a_daily_digest(
    harness: Harness, smtp_server: MailSink, webhook_receiver: WebhookReceiver
) -> None:
    immediate, hook = await subscribe(
        harness, "IOM", webhook_receiver, event_types=["activity.*"], area_numbers=[2]
    )
    digest_response = await harness.client.post(
        "/v1/subscriptions",
        json={
            "name": "daily digest",
            "channel": "email",
            "email": "Digest@IOM.example.org",
            "event_types": ["activity.created"],
            "item_numbers": [5],
            "digest": "daily",
        },
        headers=harness.tokens("IOM"),
    )
    assert digest_response.status_code == 201
    assert digest_response.json()["secret"] is None
    first, second = activity_created(), activity_created(lead="PH")
    other = activity_created(items=[20], areas=[7])
    events = [
        await harness.publish(a, subject=a.activity.activity_id) for a in (first, second, other)
    ]
    await harness.planned(events[0], 2)
    await harness.planned(events[1], 2)
    await harness.dispatch()
    assert hook is not None
    assert len(hook.requests) == 2
    assert {h.payload["type"] for h in hook.requests} == {"activity.created"}
    assert await harness.deliveries(source_event_id=str(events[2].id)) == []
    assert smtp_server.messages(header="To", value="digest@iom.example.org") == []

    assert await harness.bundle_digests(utcnow()) == 0, "not before tomorrow"
    tomorrow = utcnow() + timedelta(days=1)
    assert await harness.bundle_digests(tomorrow) == 1
    assert await harness.bundle_digests(tomorrow) == 0, "never twice"
    await harness.dispatch(tomorrow)
    [digest] = smtp_server.messages(header="To", value="digest@iom.example.org")
    assert digest.message["Subject"].startswith("[DIGEST] 2 activity updates")
    assert first.activity.title in digest.text
    assert second.activity.title in digest.text
    queued = await harness.deliveries(subscription_id=digest_response.json()["id"])
    assert sorted(d.status for d in queued) == ["delivered", "digested", "digested"]
    await unsubscribe(harness, "IOM", immediate, digest_response.json()["id"])


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


async def test_inbox_lists_marks_read_and_streams_new_items_live(harness: Harness) -> None:
    port = free_port()
    member = harness.tokens("MY", subject="mei")
    payload = alert_raised(raised_by="PH", affected=["MY"])
    async with (
        serving(harness.app, port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http,
        http.stream("GET", "/v1/inbox/stream", headers=member) as stream,
    ):
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        frames = _sse_frames(stream)
        event = await harness.publish(payload, subject=payload.alert.alert_id)
        await harness.planned(event, 7)
        await harness.dispatch()
        item = await asyncio.wait_for(_next_item_for(frames, payload.alert.alert_id), 20)
        assert item["owner"] == "member:MY"
        assert item["severity"] == "Extreme"
        assert item["read"] is False
        assert item["title"].startswith("[EXTREME] Alert raised")
        # A reconnecting client names the last item it saw and gets what came after it.
        resumed = http.stream(
            "GET", "/v1/inbox/stream", headers={**member, "Last-Event-ID": str(item["id"] - 1)}
        )
        async with resumed as again:
            first = await asyncio.wait_for(_next_item_for(_sse_frames(again), None), 20)
            assert first["id"] == item["id"]

    inbox = await harness.client.get("/v1/inbox?unread=true", headers=member)
    assert inbox.status_code == 200
    unread_before = inbox.json()["unread_count"]
    assert item["id"] in [i["id"] for i in inbox.json()["items"]]
    marked = await harness.client.patch(
        f"/v1/inbox/{item['id']}", json={"read": True}, headers=member
    )
    assert marked.status_code == 200
    assert marked.json()["read"] is True
    after = await harness.client.get("/v1/inbox", headers=member)
    assert after.json()["unread_count"] == unread_before - 1
    other = await harness.client.patch(
        f"/v1/inbox/{item['id']}", json={"read": True}, headers=harness.tokens("IOM")
    )
    assert other.status_code == 404
    bad = await harness.client.patch(
        f"/v1/inbox/{item['id']}", json={"read": "maybe"}, headers=member
    )
    assert bad.status_code == 422


async def _sse_frames(stream: httpx.Response) -> AsyncIterator[dict[str, str]]:
    frame: dict[str, str] = {}
    async for line in stream.aiter_lines():
        if not line:
            if frame:
                yield frame
            frame = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        frame[name] = value.lstrip()


async def _next_item_for(
    frames: AsyncIterator[dict[str, str]], alert_id: str | None
) -> dict[str, Any]:
    async for frame in frames:
        if frame.get("event") == "inbox.item":
            item: dict[str, Any] = json.loads(frame["data"])
            if alert_id is None or item["alert_id"] == alert_id:
                assert frame["id"] == str(item["id"])
                return item
    raise AssertionError("stream ended")


async def test_rotated_secret_signs_beside_the_old_one_during_the_overlap(
    harness: Harness, webhook_receiver: WebhookReceiver
) -> None:
    sub_id, endpoint = await subscribe(harness, "PH", webhook_receiver, member_ids=["PH"])
    assert endpoint is not None
    old_secret = endpoint.secrets[0]
    rotated = await harness.client.post(
        f"/v1/subscriptions/{sub_id}/rotate-secret", headers=harness.tokens("PH")
    )
    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret != old_secret
    assert rotated.json()["previous_secret_expires_at"] is not None
    payload = alert_raised(raised_by="PH", affected=[])
    event = await harness.publish(payload, subject=payload.alert.alert_id)
    await harness.planned(event, 6)
    await harness.dispatch()
    [hook] = endpoint.requests
    assert len(hook.headers["webhook-signature"].split(" ")) == 2
    assert Webhook(old_secret).verify(hook.body, hook.headers)
    assert Webhook(new_secret).verify(hook.body, hook.headers)
    shown = await harness.client.get(f"/v1/subscriptions/{sub_id}", headers=harness.tokens("PH"))
    assert "secret" not in shown.json()
    assert "secrets" not in shown.json()
    await unsubscribe(harness, "PH", sub_id)


async def test_subscription_api_validates_authorizes_and_versions(
    harness: Harness, webhook_receiver: WebhookReceiver
) -> None:
    url = webhook_receiver.endpoint().url
    ph = harness.tokens("PH")
    invalid = [
        ({"name": "x", "channel": "webhook"}, "body.url"),
        ({"name": "x", "channel": "email"}, "body.email"),
        ({"name": "x", "channel": "email", "email": "not-an-address"}, "body.email"),
        (
            {"name": "x", "channel": "webhook", "url": url, "event_types": ["nope"]},
            "body.event_types",
        ),
        (
            {"name": "x", "channel": "webhook", "url": url, "item_numbers": [99]},
            "body.item_numbers",
        ),
        ({"name": "x", "channel": "webhook", "url": url, "area_numbers": [9]}, "body.area_numbers"),
        (
            {"name": "x", "channel": "webhook", "url": url, "severities": ["Huge"]},
            "body.severities.0",
        ),
        ({"name": "x", "channel": "inbox", "url": url}, "body.channel"),
        ({"name": "x", "channel": "webhook", "url": "https://example.invalid/"}, "body.url"),
        ({"name": "x", "channel": "webhook", "url": url, "id": "mine"}, "body.id"),
    ]
    for body, field in invalid:
        response = await harness.client.post("/v1/subscriptions", json=body, headers=ph)
        assert response.status_code == 422, (body, response.text)
        assert field in [e["field"] for e in response.json()["errors"]], (body, response.text)

    foreign = await harness.client.post(
        "/v1/subscriptions",
        json={"name": "x", "channel": "inbox", "member_id": "AU"},
        headers=ph,
    )
    assert foreign.status_code == 403
    no_member = await harness.client.post(
        "/v1/subscriptions",
        json={"name": "x", "channel": "inbox"},
        headers=harness.tokens(None, [Role.ops], subject="ops-2"),
    )
    assert no_member.status_code == 403

    body = {"name": "idempotent", "channel": "webhook", "url": url, "severities": ["Severe"]}
    first = await harness.client.post(
        "/v1/subscriptions", json=body, headers={**ph, "Idempotency-Key": "k-1"}
    )
    again = await harness.client.post(
        "/v1/subscriptions", json=body, headers={**ph, "Idempotency-Key": "k-1"}
    )
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    sub_id = first.json()["id"]

    for other in (harness.tokens("IOM"), harness.tokens.co_chair("AU")):
        assert (
            await harness.client.get(f"/v1/subscriptions/{sub_id}", headers=other)
        ).status_code == 404
        assert (
            await harness.client.patch(
                f"/v1/subscriptions/{sub_id}",
                json={"name": "mine"},
                headers={**other, "If-Match": '"v1"'},
            )
        ).status_code == 404
    admin = await harness.client.get(f"/v1/subscriptions/{sub_id}", headers=harness.tokens.admin())
    assert admin.status_code == 200
    assert admin.headers["ETag"] == '"v1"'

    unconditional = await harness.client.patch(
        f"/v1/subscriptions/{sub_id}", json={"severities": ["Extreme"]}, headers=ph
    )
    assert unconditional.status_code == 428
    updated = await harness.client.patch(
        f"/v1/subscriptions/{sub_id}",
        json={"severities": ["Extreme"], "enabled": False},
        headers={**ph, "If-Match": '"v1"'},
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["severities"] == ["Extreme"]
    assert updated.json()["enabled"] is False
    assert updated.headers["ETag"] == '"v2"'
    stale = await harness.client.patch(
        f"/v1/subscriptions/{sub_id}", json={"name": "late"}, headers={**ph, "If-Match": '"v1"'}
    )
    assert stale.status_code == 412
    server_owned = await harness.client.patch(
        f"/v1/subscriptions/{sub_id}",
        json={"member_id": "AU"},
        headers={**ph, "If-Match": '"v2"'},
    )
    assert server_owned.status_code == 422

    listed = await harness.client.get("/v1/subscriptions?channel=webhook", headers=ph)
    assert sub_id in [s["id"] for s in listed.json()["items"]]
    assert {s["member_id"] for s in listed.json()["items"]} == {"PH"}
    await unsubscribe(harness, "PH", sub_id)
    gone = await harness.client.get(f"/v1/subscriptions/{sub_id}", headers=ph)
    assert gone.status_code == 404


async def test_notification_events_reach_the_notifications_topic(harness: Harness) -> None:
    staged, events = await harness.relayed_notifications()
    assert len(events) == staged
    assert {e.type for e in events} == {"notification.sent", "notification.delivered"}
    assert all(e.source == "/bali/notifications" for e in events)
