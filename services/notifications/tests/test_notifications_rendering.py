"""What a notification says: the alert email, the acknowledge link for co-chairs only, the rest."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from bali_common.events import CloudEvent, EventPayload
from bali_common.links import ACKNOWLEDGE_LINK_PURPOSE, verify_link_token
from bali_notifications import routing
from bali_notifications.deliveries.models import Delivery, DeliveryReason, SourceEvent
from bali_notifications.directory import MemberEntry
from bali_notifications.rendering import (
    DIGEST_EVENT_TYPE,
    render,
    render_delivery,
    webhook_body,
)
from bali_notifications.settings import NotificationsSettings
from notification_harness import activity_created, alert_raised, standard_directory

LINK = re.compile(r"http://127\.0\.0\.1:8002/v1/alerts/(?P<alert>[^/]+)/acknowledge\?token=(\S+)")
NOW = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)


def source_of(payload: EventPayload, subject: str) -> SourceEvent:
    """The source event as planning stores it."""
    event = CloudEvent.of(payload, source="/bali/test-upstream", subject=subject)
    return SourceEvent(
        event_id=str(event.id),
        event_type=event.type,
        event_version=event.version,
        subject=event.subject,
        occurred_at=event.time,
        data=event.data,
    )


def test_an_alert_email_says_what_happened_where_and_how_bad() -> None:
    payload = alert_raised(raised_by="PH", affected=["MY"], title="Boat <in> distress")
    source = source_of(payload, payload.alert.alert_id)
    rendered = render(source.event_type, source.event_version, source.data)

    assert rendered.subject == "[EXTREME] Alert raised: Boat <in> distress"
    assert rendered.summary == "An overloaded vessel is taking on water."
    lines = dict(rendered.lines)
    assert lines["Alert"] == payload.alert.alert_id
    assert lines["Situation"] == "maritime distress"
    assert (lines["Severity"], lines["Urgency"], lines["Certainty"]) == (
        "Extreme",
        "Immediate",
        "Observed",
    )
    assert lines["Raised by"] == "PH"
    assert lines["Affected members"] == "MY"
    assert lines["Locations"] == "Timor Sea"
    assert lines["People affected (estimate)"] == "120"
    assert lines["Requested actions"] == "Search and rescue coordination"
    assert lines["Raised at"].endswith(" UTC")
    assert rendered.text.startswith(rendered.subject + "\n")
    assert "Severity: Extreme" in rendered.text
    assert "<h2>[EXTREME] Alert raised: Boat &lt;in&gt; distress</h2>" in rendered.html
    assert "<in>" not in rendered.html
    assert rendered.action_url is None
    assert not LINK.search(rendered.text)


def test_the_acknowledge_link_goes_to_co_chairs_only_and_names_its_recipient() -> None:
    settings = NotificationsSettings()
    payload = alert_raised(raised_by="PH", affected=["MY"])
    alert_id = payload.alert.alert_id
    source = source_of(payload, alert_id)
    members = [
        MemberEntry(
            member_id=m.member_id,
            name=m.name,
            kind=m.kind.value,
            is_co_chair=m.is_co_chair,
            version=m.version,
            focal_points=[point.model_dump(mode="json") for point in m.focal_points],
        )
        for m in standard_directory()
    ]
    emails = [r for r in routing.rule_recipients(payload, members) if r.channel.value == "email"]
    assert {r.reason for r in emails} == {DeliveryReason.co_chair, DeliveryReason.affected_member}
    for recipient in emails:
        delivery = Delivery(
            source_event_id=source.event_id,
            event_type=source.event_type,
            channel="email",
            recipient=recipient.address,
            alert_id=alert_id,
            reason=recipient.reason.value,
            acknowledge_link=recipient.acknowledge_link,
        )
        rendered = render_delivery(delivery=delivery, source=source, settings=settings, now=NOW)
        links = LINK.findall(rendered.text)
        if recipient.reason is not DeliveryReason.co_chair:
            assert links == []
            assert rendered.action_url is None
            continue
        [(linked_alert, token)] = links
        assert linked_alert == alert_id
        assert rendered.action_label == "Acknowledge this alert (one click)"
        assert token in rendered.html
        claims = verify_link_token(
            settings.link_verifying_secrets, token, purpose=ACKNOWLEDGE_LINK_PURPOSE, now=NOW
        )
        assert (claims.subject, claims.recipient) == (alert_id, recipient.address)
        expected = NOW + timedelta(seconds=settings.acknowledge_link_ttl_s)
        assert claims.expires_at == int(expected.timestamp())


def test_an_activity_and_a_digest_of_activities_have_their_own_subjects() -> None:
    first, second = activity_created(lead="IOM"), activity_created(lead="PH")
    source = source_of(first, first.activity.activity_id)
    rendered = render(source.event_type, source.event_version, source.data)
    assert rendered.subject == f"[ACTIVITY] Activity logged: {first.activity.title}"
    assert rendered.summary == "Activity logged by IOM."
    assert dict(rendered.lines)["Strategy items"] == "5"

    items = [
        {"event_type": "activity.created", "activity": a.activity.model_dump(mode="json")}
        for a in (first, second)
    ]
    digest = render(DIGEST_EVENT_TYPE, 1, {"day": "2026-02-28", "items": items})
    assert digest.subject == "[DIGEST] 2 activity updates up to 2026-02-28"
    assert digest.lines == [
        ("Activity logged", f"{first.activity.title} (IOM)"),
        ("Activity logged", f"{second.activity.title} (PH)"),
    ]
    single = render(DIGEST_EVENT_TYPE, 1, {"day": "2026-02-28", "items": items[:1]})
    assert single.subject == "[DIGEST] 1 activity update up to 2026-02-28"


def test_the_webhook_body_is_the_standard_webhooks_shape_of_the_source_event() -> None:
    body = webhook_body(
        event_type="alert.raised",
        event_id="evt-1",
        occurred_at=datetime(2026, 3, 1, 8, 30),
        data={"alert": {"title": "Bateau en détresse"}},
    )
    assert json.loads(body) == {
        "type": "alert.raised",
        "timestamp": "2026-03-01T08:30:00+00:00",
        "event_id": "evt-1",
        "data": {"alert": {"title": "Bateau en détresse"}},
    }
    assert body.startswith(b'{"type":"alert.raised","timestamp":'), "compact separators"
    assert "détresse".encode() in body, "UTF-8, not escaped"
