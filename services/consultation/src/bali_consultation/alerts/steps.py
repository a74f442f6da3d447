"""Recording a step of an alert's life: timeline row, `alert.*` event and audit row, one commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bali_common.auth import Principal
from bali_common.db import as_utc
from bali_common.events.alerts import (
    AlertEvent,
    AlertStatus,
    AlertSummary,
    Certainty,
    Sensitivity,
    Severity,
    SituationType,
    Urgency,
)
from bali_common.events.shared import Actor
from bali_common.http.audit import record_audit
from bali_common.messaging.outbox import stage_event
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_consultation.alerts.models import Alert, AlertTimelineEntry, optional_utc


@dataclass(frozen=True)
class Step:
    """Who takes a step on which alert, when, from where, and against which ETag."""

    alert_id: str
    principal: Principal
    now: datetime
    if_match: str | None = None
    source: str | None = None


class EventFactory(Protocol):
    """An `alert.*` event with its own fields bound; recording the step adds the rest."""

    def __call__(
        self, *, alert: AlertSummary, actor: Actor, occurred_at: datetime
    ) -> AlertEvent: ...


@dataclass(frozen=True)
class Change:
    """What a step records besides the alert: the timeline row's details and the event."""

    details: dict[str, Any]
    event: EventFactory


def actor_of(principal: Principal) -> Actor:
    return Actor(subject=principal.subject, member_id=principal.member_id, name=principal.name)


def summary_of(alert: Alert) -> AlertSummary:
    people = alert.people_affected or {}
    return AlertSummary(
        alert_id=alert.id,
        version=alert.version,
        status=AlertStatus(alert.status),
        situation_type=SituationType(alert.situation_type),
        title=alert.title,
        severity=Severity(alert.severity),
        urgency=Urgency(alert.urgency),
        certainty=Certainty(alert.certainty),
        sensitivity=Sensitivity(alert.sensitivity),
        raised_by_member=alert.raised_by_member,
        affected_members=list(alert.affected_members),
        location_names=list(alert.location.get("place_names", [])),
        people_affected=people.get("estimate"),
        raised_at=as_utc(alert.raised_at),
        escalation_level=alert.escalation_level,
        acknowledged_at=optional_utc(alert.acknowledged_at),
        convened_at=optional_utc(alert.convened_at),
        resolved_at=optional_utc(alert.resolved_at),
    )


async def commit(
    *,
    session: AsyncSession,
    alert: Alert,
    step: Step,
    kind: str,
    change: Change,
    first: bool = False,
) -> Alert:
    """Bump the version, append the timeline row, stage event and audit, commit."""
    actor = actor_of(step.principal)
    if not first:
        alert.version += 1
    alert.updated_at = step.now
    session.add(alert)
    session.add(
        AlertTimelineEntry(
            alert_id=alert.id,
            version=alert.version,
            kind=kind,
            at=step.now,
            actor_subject=actor.subject,
            actor_member=actor.member_id,
            actor_name=actor.name,
            details=change.details,
        )
    )
    event = change.event(alert=summary_of(alert), actor=actor, occurred_at=step.now)
    stage_event(session, event, subject=alert.id)
    record_audit(
        session,
        principal=step.principal,
        action=f"alert.{kind}",
        resource_type="alert",
        resource_id=alert.id,
        source=step.source,
        details={"version": alert.version, **change.details},
    )
    await session.commit()
    return alert
