"""Events of the alerts stream: the Consultation Mechanism (strategy item 11) alert lifecycle.

Every event carries the alert's current summary (with its version) plus what
the step itself adds, so a consumer never needs to call back the service.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from bali_common.events.registry import EventPayload, event_type
from bali_common.events.shared import Actor
from bali_common.events.topics import Stream


class SituationType(StrEnum):
    maritime_distress = "maritime_distress"
    disaster_displacement = "disaster_displacement"
    online_scam_trafficking = "online_scam_trafficking"
    mass_irregular_movement = "mass_irregular_movement"
    other = "other"


class Severity(StrEnum):
    """CAP 1.2 section 3.2.2 `severity` values."""

    extreme = "Extreme"
    severe = "Severe"
    moderate = "Moderate"
    minor = "Minor"
    unknown = "Unknown"


class Urgency(StrEnum):
    """CAP 1.2 section 3.2.2 `urgency` values."""

    immediate = "Immediate"
    expected = "Expected"
    future = "Future"
    past = "Past"
    unknown = "Unknown"


class Certainty(StrEnum):
    """CAP 1.2 section 3.2.2 `certainty` values."""

    observed = "Observed"
    likely = "Likely"
    possible = "Possible"
    unlikely = "Unlikely"
    unknown = "Unknown"


class Sensitivity(StrEnum):
    public = "public"
    restricted = "restricted"


class AlertStatus(StrEnum):
    raised = "raised"
    acknowledged = "acknowledged"
    escalated = "escalated"
    consultation_convened = "consultation_convened"
    outreach_under_way = "outreach_under_way"
    resolved = "resolved"
    withdrawn = "withdrawn"


class AlertSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    alert_id: str
    version: int = Field(ge=1, description="Increases with every step; consumers drop older ones")
    status: AlertStatus
    situation_type: SituationType
    title: str
    severity: Severity
    urgency: Urgency
    certainty: Certainty
    sensitivity: Sensitivity
    raised_by_member: str
    affected_members: list[str] = Field(default_factory=list)
    location_names: list[str] = Field(default_factory=list)
    people_affected: int | None = None
    raised_at: datetime
    escalation_level: int = 0
    acknowledged_at: datetime | None = Field(
        default=None, description="First acknowledgement (response-time dashboards)"
    )
    convened_at: datetime | None = Field(default=None, description="First consultation convened")
    resolved_at: datetime | None = None


class AlertEvent(EventPayload):
    alert: AlertSummary
    actor: Actor
    occurred_at: datetime


@event_type("alert.raised", stream=Stream.alerts)
class AlertRaised(AlertEvent):
    """A member raised an emergency irregular-migration alert."""

    description: str
    requested_actions: list[str] = Field(default_factory=list)


@event_type("alert.updated", stream=Stream.alerts)
class AlertUpdated(AlertEvent):
    """A situation update was added to an open alert (including a repeated raise)."""

    update_text: str
    changed_fields: list[str] = Field(
        default_factory=list, description="Alert fields the update changed, e.g. severity"
    )
    repeated_raise: bool = Field(
        default=False, description="The raising member raised the same situation (dedup key) again"
    )


@event_type("alert.acknowledged", stream=Stream.alerts)
class AlertAcknowledged(AlertEvent):
    """A co-chair acknowledged the alert."""

    via_link: bool = False


@event_type("alert.escalated", stream=Stream.alerts)
class AlertEscalated(AlertEvent):
    """The alert escalated: re-notify, or widen the audience to senior officials."""

    level: int = Field(ge=1)
    reason: str = Field(description="unacknowledged_timeout | manual")
    notify_senior_officials: bool = False
    note: str | None = Field(default=None, description="Why a co-chair escalated by hand")


@event_type("alert.consultation_convened", stream=Stream.alerts)
class AlertConsultationConvened(AlertEvent):
    """The co-chairs convened a consultation on the alert."""

    convened_for: datetime
    participants: list[str] = Field(default_factory=list)
    agenda: str | None = None


@event_type("alert.outreach_logged", stream=Stream.alerts)
class AlertOutreachLogged(AlertEvent):
    """Good Offices outreach was logged: who reached whom, with what outcome."""

    reached_by: str
    reached: str
    outcome: str


@event_type("alert.resolved", stream=Stream.alerts)
class AlertResolved(AlertEvent):
    """The co-chairs resolved the alert with a summary."""

    summary: str


@event_type("alert.withdrawn", stream=Stream.alerts)
class AlertWithdrawn(AlertEvent):
    """The raising member or a co-chair withdrew the alert."""

    reason: str | None = None


@event_type("alert.reopened", stream=Stream.alerts)
class AlertReopened(AlertEvent):
    """A resolved or withdrawn alert was reopened within the reopen period."""

    reason: str | None = None
