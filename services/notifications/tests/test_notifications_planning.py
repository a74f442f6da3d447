"""Planning: each event reaches the people who must act, exactly once, on every channel."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import pytest_asyncio
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
from bali_devkit.testing.plugin import eventually
from bali_notifications import planning
from bali_notifications.deliveries.models import Delivery
from notification_harness import (
    Harness,
    ServiceStarter,
    activity_created,
    alert_raised,
    subscribe,
    unsubscribe,
)
from notification_receivers import MailSink, WebhookReceiver
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

CO_CHAIR_FOCAL_POINTS = {"ana@au.example.org", "ben@au.example.org", "dewi@id.example.org"}
LINK = re.compile(r"http://127\.0\.0\.1:8002/v1/alerts/(?P<alert>[^/]+)/acknowledge\?token=(\S+)")


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def harness(notifications: ServiceStarter) -> AsyncIterator[Harness]:
    async with notifications.started("planning") as harness:
        yield harness


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
                harness.settings.link_verifying_secrets,
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
    duplicates = harness.runtime.metrics.events_duplicate.labels("notifications.planning")
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
    """A co-chair member's subscription receives restricted alerts only if an acting co-chair
    made it: one a plain user of AU made is AU's, and AU is not named in the alert."""
    raiser, raiser_hook = await subscribe(harness, "PH", webhook_receiver)
    affected, affected_hook = await subscribe(harness, "MY", webhook_receiver)
    co_chair, co_chair_hook = await subscribe(
        harness, "AU", webhook_receiver, headers=harness.tokens.co_chair("AU")
    )
    plain, plain_hook = await subscribe(harness, "AU", webhook_receiver)
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
    assert plain_hook.requests == []  # type: ignore[union-attr]
    assert outsider_hook.requests == []  # type: ignore[union-attr]
    assert plain not in {d.subscription_id for d in deliveries}
    assert "user:platform-admin" not in {d.recipient for d in deliveries}
    assert "IOM" not in {d.member_id for d in deliveries}
    assert len(smtp_server.for_alert(payload.alert.alert_id)) == 4
    await unsubscribe(harness, "PH", raiser)
    await unsubscribe(harness, "MY", affected)
    await unsubscribe(harness, "AU", co_chair, plain)
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
