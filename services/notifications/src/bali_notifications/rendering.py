"""What a notification says: email subject, text and HTML, the webhook body and inbox entries."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from bali_common.db import as_utc
from bali_common.events import REGISTRY
from bali_common.events.activities import ActivityEvent
from bali_common.events.alerts import (
    AlertConsultationConvened,
    AlertEscalated,
    AlertEvent,
    AlertOutreachLogged,
    AlertRaised,
    AlertResolved,
    AlertUpdated,
)
from bali_common.links import ACKNOWLEDGE_LINK_PURPOSE, mint_link_token

from bali_notifications.deliveries.models import Delivery, SourceEvent
from bali_notifications.settings import NotificationsSettings

DIGEST_EVENT_TYPE = "activity.digest"

_ALERT_HEADLINES = {
    "alert.raised": "Alert raised",
    "alert.updated": "Alert updated",
    "alert.acknowledged": "Alert acknowledged",
    "alert.escalated": "Alert escalated",
    "alert.consultation_convened": "Consultation convened",
    "alert.outreach_logged": "Outreach logged",
    "alert.resolved": "Alert resolved",
    "alert.withdrawn": "Alert withdrawn",
    "alert.reopened": "Alert reopened",
}
_ACTIVITY_HEADLINES = {
    "activity.created": "Activity logged",
    "activity.updated": "Activity updated",
    "activity.status_changed": "Activity status changed",
    "activity.deleted": "Activity deleted",
    "activity.restored": "Activity restored",
}


@dataclass(frozen=True)
class Rendered:
    """One notification in every form a channel needs."""

    subject: str
    lines: list[tuple[str, str]]
    summary: str
    action_label: str | None = None
    action_url: str | None = None

    @property
    def text(self) -> str:
        parts = [self.subject, "", self.summary, ""]
        parts += [f"{label}: {value}" for label, value in self.lines]
        if self.action_url:
            parts += ["", f"{self.action_label}: {self.action_url}"]
        parts += ["", "-- Bali Process Cooperation Platform"]
        return "\n".join(parts) + "\n"

    @property
    def html(self) -> str:
        rows = "".join(
            f"<tr><th align='left'>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
            for label, value in self.lines
        )
        action = ""
        if self.action_url:
            action = (
                f'<p><a href="{html.escape(self.action_url, quote=True)}">'
                f"{html.escape(self.action_label or self.action_url)}</a></p>"
            )
        return (
            "<!doctype html><html><body>"
            f"<h2>{html.escape(self.subject)}</h2>"
            f"<p>{html.escape(self.summary)}</p>"
            f"<table>{rows}</table>{action}"
            "<p><small>Bali Process Cooperation Platform</small></p>"
            "</body></html>"
        )


def parse_event(event_type: str, version: int, data: dict[str, Any]) -> Any:
    """The stored event data as its registered model (digests stay plain dicts)."""
    if event_type == DIGEST_EVENT_TYPE:
        return data
    return REGISTRY.get(event_type, version).model.model_validate(data)


def acknowledge_url(base_url: str, alert_id: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/v1/alerts/{quote(alert_id, safe='')}/acknowledge?token={token}"


def render_delivery(
    *, delivery: Delivery, source: SourceEvent, settings: NotificationsSettings, now: datetime
) -> Rendered:
    """What one delivery says; one that asks for it carries a one-click acknowledge link."""
    link = None
    if delivery.acknowledge_link and delivery.alert_id:
        token = mint_link_token(
            settings.link_signing_secret,
            purpose=ACKNOWLEDGE_LINK_PURPOSE,
            subject=delivery.alert_id,
            recipient=delivery.recipient,
            expires_at=now + timedelta(seconds=settings.acknowledge_link_ttl_s),
        )
        link = acknowledge_url(settings.consultation_public_url, delivery.alert_id, token)
    return render(source.event_type, source.event_version, source.data, acknowledge=link)


def render(
    event_type: str, version: int, data: dict[str, Any], *, acknowledge: str | None = None
) -> Rendered:
    payload = parse_event(event_type, version, data)
    if isinstance(payload, AlertEvent):
        return _render_alert(event_type, payload, acknowledge)
    if isinstance(payload, ActivityEvent):
        return _render_activity(event_type, payload)
    if event_type == DIGEST_EVENT_TYPE:
        return _render_digest(data)
    return Rendered(subject=event_type, lines=[], summary=json.dumps(data)[:2000])


def _render_alert(event_type: str, event: AlertEvent, acknowledge: str | None) -> Rendered:
    alert = event.alert
    headline = _ALERT_HEADLINES.get(event_type, event_type)
    if isinstance(event, AlertEscalated):
        headline = f"{headline} (level {event.level})"
    lines = [
        ("Alert", alert.alert_id),
        ("Situation", alert.situation_type.value.replace("_", " ")),
        ("Severity", alert.severity.value),
        ("Urgency", alert.urgency.value),
        ("Certainty", alert.certainty.value),
        ("Status", alert.status.value.replace("_", " ")),
        ("Raised by", alert.raised_by_member),
        ("Affected members", ", ".join(alert.affected_members) or "-"),
    ]
    if alert.location_names:
        lines.append(("Locations", ", ".join(alert.location_names)))
    if alert.people_affected is not None:
        lines.append(("People affected (estimate)", str(alert.people_affected)))
    summary = f"{headline} by {event.actor.member_id or event.actor.subject}."
    if isinstance(event, AlertRaised):
        summary = event.description
        if event.requested_actions:
            lines.append(("Requested actions", "; ".join(event.requested_actions)))
    elif isinstance(event, AlertUpdated):
        summary = event.update_text
    elif isinstance(event, AlertEscalated):
        summary = f"Escalated to level {event.level} ({event.reason.replace('_', ' ')})."
    elif isinstance(event, AlertConsultationConvened):
        lines.append(("Convened for", _when(event.convened_for)))
        if event.agenda:
            summary = event.agenda
    elif isinstance(event, AlertOutreachLogged):
        summary = f"{event.reached_by} reached {event.reached}: {event.outcome}"
    elif isinstance(event, AlertResolved):
        summary = event.summary
    lines.append(("Raised at", _when(alert.raised_at)))
    return Rendered(
        subject=f"[{alert.severity.value.upper()}] {headline}: {alert.title}",
        lines=lines,
        summary=summary,
        action_label="Acknowledge this alert (one click)" if acknowledge else None,
        action_url=acknowledge,
    )


def _render_activity(event_type: str, event: ActivityEvent) -> Rendered:
    activity = event.activity
    headline = _ACTIVITY_HEADLINES.get(event_type, event_type)
    return Rendered(
        subject=f"[ACTIVITY] {headline}: {activity.title}",
        lines=_activity_lines(activity.model_dump(mode="json")),
        summary=f"{headline} by {activity.lead_member}.",
    )


def _activity_lines(activity: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("Activity", str(activity.get("activity_id", ""))),
        ("Lead member", str(activity.get("lead_member", ""))),
        ("Status", str(activity.get("status", ""))),
        ("Strategy items", ", ".join(str(n) for n in activity.get("item_numbers", []))),
        ("Areas", ", ".join(str(n) for n in activity.get("area_numbers", []))),
    ]


def _render_digest(data: dict[str, Any]) -> Rendered:
    items = data.get("items", [])
    lines = [
        (
            _ACTIVITY_HEADLINES.get(item.get("event_type", ""), item.get("event_type", "")),
            f"{item.get('activity', {}).get('title', '')} "
            f"({item.get('activity', {}).get('lead_member', '')})",
        )
        for item in items
    ]
    count = len(items)
    return Rendered(
        subject=f"[DIGEST] {count} activity update{'s' if count != 1 else ''} "
        f"up to {data.get('day', '')}",
        lines=lines,
        summary="Cooperation activities logged or changed since the last digest.",
    )


def webhook_body(
    *, event_type: str, event_id: str, occurred_at: datetime, data: dict[str, Any]
) -> bytes:
    """Standard Webhooks payload shape: type, timestamp, data (plus the source event id)."""
    document = {
        "type": event_type,
        "timestamp": as_utc(occurred_at).isoformat(),
        "event_id": event_id,
        "data": data,
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def _when(moment: datetime) -> str:
    return as_utc(moment).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
