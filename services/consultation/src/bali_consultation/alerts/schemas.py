"""What the alerts API reads and answers: requests, their value objects, and responses."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from bali_common.db import as_utc
from bali_common.events.alerts import (
    AlertStatus,
    Certainty,
    Sensitivity,
    Severity,
    SituationType,
    Urgency,
)
from bali_common.events.shared import Actor
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from bali_consultation.alerts.models import (
    OPEN_STATUSES,
    Alert,
    AlertTimelineEntry,
    optional_utc,
)

# XML 1.0 section 2.2 `Char`: anything else cannot appear in a CAP or Atom document (and NUL
# cannot be stored in PostgreSQL text), so it is refused at the door with a 422.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_safe(value: str) -> str:
    if _NOT_XML_CHAR.search(value):
        raise ValueError("contains control characters that are not allowed")
    return value


ShortText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_xml_safe),
]
Headline = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=160),
    AfterValidator(_xml_safe),
]
ActionText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=500),
    AfterValidator(_xml_safe),
]
LongText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000),
    AfterValidator(_xml_safe),
]
#: CAP 1.2 section 3.2.1: addresses are space-delimited, so member ids have no spaces.
MemberId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,49}$")]
DedupKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/\-]{0,199}$")]

# --- value objects shared by requests and responses -------------------------------------------


class GeoPoint(BaseModel):
    """A WGS 84 position (CAP 1.2 section 3.2.4 coordinates)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class PointLocation(GeoPoint):
    radius_km: float = Field(
        default=0, ge=0, le=20_000, description="Radius of uncertainty; 0 for an exact point"
    )


class Location(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "place_names": ["Timor Sea", "south of Rote Island"],
                    "point": {"lat": -11.2, "lon": 123.1, "radius_km": 25},
                }
            ]
        },
    )

    place_names: list[ShortText] = Field(min_length=1, max_length=20)
    point: PointLocation | None = None
    polygon: list[GeoPoint] | None = Field(
        default=None,
        min_length=3,
        max_length=500,
        description="Vertices of the affected area; the ring is closed if the last vertex "
        "does not repeat the first (CAP 1.2 needs at least four pairs, first and last equal)",
    )

    @model_validator(mode="after")
    def _close_polygon(self) -> Location:
        if self.polygon and self.polygon[0] != self.polygon[-1]:
            self.polygon = [*self.polygon, self.polygon[0]]
        if self.polygon is not None and len(self.polygon) < 4:
            raise ValueError("polygon needs at least three distinct vertices")
        return self


class PeopleAffected(BaseModel):
    model_config = ConfigDict(extra="forbid")

    estimate: int = Field(ge=0, le=100_000_000)
    women: int | None = Field(default=None, ge=0, le=100_000_000)
    children: int | None = Field(default=None, ge=0, le=100_000_000)

    @model_validator(mode="after")
    def _parts_within_estimate(self) -> PeopleAffected:
        for part in (self.women, self.children):
            if part is not None and part > self.estimate:
                raise ValueError("women and children counts cannot exceed the estimate")
        return self


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


UniqueMemberIds = Annotated[list[MemberId], AfterValidator(_unique)]

#: The documented raise: the tests raise it too, so it stays a valid example.
ALERT_EXAMPLE: dict[str, Any] = {
    "situation_type": "maritime_distress",
    "title": "Two boats adrift south of Rote Island",
    "description": "Two wooden boats with about 120 people adrift for two days; engine failure.",
    "severity": "Extreme",
    "urgency": "Immediate",
    "certainty": "Observed",
    "affected_members": ["ID", "AU"],
    "location": {
        "place_names": ["Timor Sea", "south of Rote Island"],
        "point": {"lat": -11.2, "lon": 123.1, "radius_km": 25},
    },
    "people_affected": {"estimate": 120, "women": 30, "children": 40},
    "requested_actions": ["Search and rescue coordination", "Disembarkation arrangements"],
    "sensitivity": "public",
    "dedup_key": "rote-boats-2026-11-28",
}


# --- requests -----------------------------------------------------------------------------------


class AlertCreate(BaseModel):
    """What a member reports when it raises an alert."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [ALERT_EXAMPLE]})

    situation_type: SituationType
    title: Headline = Field(description="CAP headline: at most 160 characters")
    description: LongText
    severity: Severity
    urgency: Urgency
    certainty: Certainty
    affected_members: UniqueMemberIds = Field(default_factory=list, max_length=50)
    location: Location
    people_affected: PeopleAffected | None = None
    requested_actions: list[ActionText] = Field(default_factory=list, max_length=20)
    sensitivity: Sensitivity = Field(
        default=Sensitivity.restricted,
        description="restricted (the default) shows the alert only to the co-chairs, the raising "
        "member and the affected members; public also lists it in the Atom feed",
    )
    dedup_key: DedupKey = Field(
        description="Raising again with the same key while the alert is open adds an update "
        "to it instead of opening a new alert"
    )


class SituationUpdateCreate(BaseModel):
    """A situation update; fields other than `text` change the alert and need If-Match."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"text": "One boat has been towed to Rote; the second is still adrift."},
                {
                    "text": "Numbers revised after aerial survey.",
                    "people_affected": {"estimate": 160, "women": 35, "children": 52},
                    "severity": "Extreme",
                },
            ]
        },
    )

    text: LongText
    title: Headline | None = None
    description: LongText | None = None
    severity: Severity | None = None
    urgency: Urgency | None = None
    certainty: Certainty | None = None
    affected_members: UniqueMemberIds | None = Field(default=None, max_length=50)
    location: Location | None = None
    people_affected: PeopleAffected | None = None
    requested_actions: list[ActionText] | None = Field(default=None, max_length=20)
    sensitivity: Sensitivity | None = None

    def changes(self) -> dict[str, Any]:
        """The alert fields this update sets, as JSON-ready values."""
        dumped = self.model_dump(mode="json", exclude={"text"})
        return {field: value for field, value in dumped.items() if value is not None}


class EscalationCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"reason": "No response from flag state", "notify_senior_officials": True}]
        },
    )

    reason: LongText | None = None
    notify_senior_officials: bool = False


class ConsultationCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "convened_for": "2026-11-28T20:00:00+07:00",
                    "participants": ["ID", "AU", "IOM", "UNHCR"],
                    "agenda": "Disembarkation options and burden sharing",
                }
            ]
        },
    )

    convened_for: AwareDatetime
    participants: list[ShortText] = Field(min_length=1, max_length=100)
    agenda: LongText | None = None


class OutreachCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "reached_by": "AU",
                    "reached": "Timor-Leste Ministry of Foreign Affairs",
                    "outcome": "Agreed to allow disembarkation in Suai",
                }
            ]
        },
    )

    reached_by: ShortText
    reached: ShortText
    outcome: LongText


class ResolutionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"summary": "All 120 people disembarked safely in Kupang."}]
        },
    )

    summary: LongText


class ReasonCreate(BaseModel):
    """Why an alert is withdrawn or reopened."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "Raised in error"}]}
    )

    reason: LongText | None = None


# --- responses ----------------------------------------------------------------------------------


class ResponseTimes(BaseModel):
    """Seconds from raising to each milestone (null until reached)."""

    seconds_to_acknowledge: float | None = None
    seconds_to_convene: float | None = None
    seconds_to_resolve: float | None = None


class AlertLinks(BaseModel):
    self: str
    timeline: str
    cap: str


class AlertPublic(BaseModel):
    id: str
    version: int
    status: AlertStatus
    open: bool
    situation_type: SituationType
    title: str
    description: str
    severity: Severity
    urgency: Urgency
    certainty: Certainty
    sensitivity: Sensitivity
    raised_by_member: str
    raised_by: Actor
    affected_members: list[str]
    location: Location
    people_affected: PeopleAffected | None
    requested_actions: list[str]
    dedup_key: str
    raised_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: Actor | None
    convened_at: datetime | None = Field(description="When the first consultation was convened")
    resolved_at: datetime | None
    closed_at: datetime | None
    reopen_until: datetime | None = Field(description="A closed alert may be reopened until then")
    resolution_summary: str | None
    withdrawal_reason: str | None
    escalation_level: int
    response_times: ResponseTimes
    links: AlertLinks


class TimelineEntryPublic(BaseModel):
    version: int = Field(description="The alert's version after this step")
    kind: str = Field(
        description="raised | updated | acknowledged | escalated | consultation_convened | "
        "outreach_logged | resolved | withdrawn | reopened"
    )
    at: datetime
    actor: Actor
    details: dict[str, Any]


def seconds_between(start: datetime, end: datetime | None) -> float | None:
    return None if end is None else (as_utc(end) - as_utc(start)).total_seconds()


def to_public(alert: Alert, *, reopen_until: datetime | None) -> AlertPublic:
    raised_at = as_utc(alert.raised_at)
    base = f"/v1/alerts/{alert.id}"
    return AlertPublic(
        id=alert.id,
        version=alert.version,
        status=AlertStatus(alert.status),
        open=AlertStatus(alert.status) in OPEN_STATUSES,
        situation_type=SituationType(alert.situation_type),
        title=alert.title,
        description=alert.description,
        severity=Severity(alert.severity),
        urgency=Urgency(alert.urgency),
        certainty=Certainty(alert.certainty),
        sensitivity=Sensitivity(alert.sensitivity),
        raised_by_member=alert.raised_by_member,
        raised_by=Actor(
            subject=alert.raised_by_subject,
            member_id=alert.raised_by_member,
            name=alert.raised_by_name,
        ),
        affected_members=list(alert.affected_members),
        location=Location.model_validate(alert.location),
        people_affected=(
            PeopleAffected.model_validate(alert.people_affected) if alert.people_affected else None
        ),
        requested_actions=list(alert.requested_actions),
        dedup_key=alert.dedup_key,
        raised_at=raised_at,
        updated_at=as_utc(alert.updated_at),
        acknowledged_at=optional_utc(alert.acknowledged_at),
        acknowledged_by=(
            Actor.model_validate(alert.acknowledged_by) if alert.acknowledged_by else None
        ),
        convened_at=optional_utc(alert.convened_at),
        resolved_at=optional_utc(alert.resolved_at),
        closed_at=optional_utc(alert.closed_at),
        reopen_until=reopen_until,
        resolution_summary=alert.resolution_summary,
        withdrawal_reason=alert.withdrawal_reason,
        escalation_level=alert.escalation_level,
        response_times=ResponseTimes(
            seconds_to_acknowledge=seconds_between(raised_at, alert.acknowledged_at),
            seconds_to_convene=seconds_between(raised_at, alert.convened_at),
            seconds_to_resolve=seconds_between(raised_at, alert.resolved_at),
        ),
        links=AlertLinks(self=base, timeline=f"{base}/timeline", cap=f"{base}/cap.xml"),
    )


def to_timeline_public(entry: AlertTimelineEntry) -> TimelineEntryPublic:
    return TimelineEntryPublic(
        version=entry.version,
        kind=entry.kind,
        at=as_utc(entry.at),
        actor=Actor(
            subject=entry.actor_subject, member_id=entry.actor_member, name=entry.actor_name
        ),
        details=dict(entry.details),
    )
