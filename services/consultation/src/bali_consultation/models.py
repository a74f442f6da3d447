"""Alerts, their timeline, escalation timers and the member directory: tables and API models."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

import sqlmodel
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
from sqlalchemy import JSON, Column, DateTime, Index, Text, UniqueConstraint, text
from sqlmodel import SQLModel

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

OPEN_STATUSES = frozenset(
    {
        AlertStatus.raised,
        AlertStatus.escalated,
        AlertStatus.acknowledged,
        AlertStatus.consultation_convened,
        AlertStatus.outreach_under_way,
    }
)
UNACKNOWLEDGED_STATUSES = frozenset({AlertStatus.raised, AlertStatus.escalated})
CLOSED_STATUSES = frozenset({AlertStatus.resolved, AlertStatus.withdrawn})


def _utc_column(*, nullable: bool) -> Any:
    return sqlmodel.Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=nullable),
    )


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


# --- tables -------------------------------------------------------------------------------------


class Alert(SQLModel, table=True):
    """One alert in its current state; every change bumps `version` and adds a timeline row."""

    __tablename__ = "consultation_alerts"
    __table_args__ = (
        # One open alert per (raising member, dedup key): `open_dedup_key` is NULL once closed,
        # and NULLs never collide, so concurrent raises of one situation cannot both insert.
        UniqueConstraint("raised_by_member", "open_dedup_key", name="uq_alert_open_dedup"),
        Index("ix_alert_raised", "raised_at", "id"),
        Index("ix_alert_updated", "updated_at", "id"),
    )

    id: str = sqlmodel.Field(primary_key=True, max_length=36)
    version: int = 1
    status: str = sqlmodel.Field(max_length=30, index=True)
    situation_type: str = sqlmodel.Field(max_length=40)
    title: str = sqlmodel.Field(max_length=160)
    description: str = sqlmodel.Field(sa_column=Column(Text, nullable=False))
    severity: str = sqlmodel.Field(max_length=10)
    urgency: str = sqlmodel.Field(max_length=10)
    certainty: str = sqlmodel.Field(max_length=10)
    sensitivity: str = sqlmodel.Field(max_length=10)
    raised_by_member: str = sqlmodel.Field(max_length=50, index=True)
    raised_by_subject: str = sqlmodel.Field(max_length=300)
    raised_by_name: str | None = sqlmodel.Field(default=None, max_length=300)
    affected_members: list[str] = sqlmodel.Field(default_factory=list, sa_column=Column(JSON))
    location: dict[str, Any] = sqlmodel.Field(default_factory=dict, sa_column=Column(JSON))
    people_affected: dict[str, Any] | None = sqlmodel.Field(default=None, sa_column=Column(JSON))
    requested_actions: list[str] = sqlmodel.Field(default_factory=list, sa_column=Column(JSON))
    dedup_key: str = sqlmodel.Field(max_length=200)
    open_dedup_key: str | None = sqlmodel.Field(default=None, max_length=200)
    raised_at: datetime = _utc_column(nullable=False)
    updated_at: datetime = _utc_column(nullable=False)
    acknowledged_at: datetime | None = _utc_column(nullable=True)
    acknowledged_by: dict[str, Any] | None = sqlmodel.Field(default=None, sa_column=Column(JSON))
    convened_at: datetime | None = _utc_column(nullable=True)
    resolved_at: datetime | None = _utc_column(nullable=True)
    closed_at: datetime | None = _utc_column(nullable=True)
    status_before_close: str | None = sqlmodel.Field(default=None, max_length=30)
    resolution_summary: str | None = sqlmodel.Field(
        default=None, sa_column=Column(Text, nullable=True)
    )
    withdrawal_reason: str | None = sqlmodel.Field(
        default=None, sa_column=Column(Text, nullable=True)
    )
    escalation_level: int = 0
    escalation_plan: int = 1
    escalation_anchor_at: datetime = _utc_column(nullable=False)


class AlertAffectedMember(SQLModel, table=True):
    """Who an alert affects, as rows, so that visibility filters stay portable SQL."""

    __tablename__ = "alert_affected_members"

    alert_id: str = sqlmodel.Field(primary_key=True, max_length=36)
    member_id: str = sqlmodel.Field(primary_key=True, max_length=50, index=True)


class AlertTimelineEntry(SQLModel, table=True):
    """One step of an alert's life: who, when, what. Row `version` is the alert's after the step."""

    __tablename__ = "alert_timeline"
    __table_args__ = (UniqueConstraint("alert_id", "version", name="uq_timeline_version"),)

    id: int | None = sqlmodel.Field(default=None, primary_key=True)
    alert_id: str = sqlmodel.Field(max_length=36, index=True)
    version: int
    kind: str = sqlmodel.Field(max_length=40)
    at: datetime = _utc_column(nullable=False)
    actor_subject: str = sqlmodel.Field(max_length=300)
    actor_member: str | None = sqlmodel.Field(default=None, max_length=50)
    actor_name: str | None = sqlmodel.Field(default=None, max_length=300)
    details: dict[str, Any] = sqlmodel.Field(default_factory=dict, sa_column=Column(JSON))


class EscalationTimer(SQLModel, table=True):
    """A due escalation step; it fires once: `fired_at` is set by a conditional UPDATE."""

    __tablename__ = "escalation_timers"
    __table_args__ = (
        Index(
            "ix_escalation_timers_pending",
            "due_at",
            postgresql_where=text("fired_at IS NULL AND cancelled_at IS NULL"),
            sqlite_where=text("fired_at IS NULL AND cancelled_at IS NULL"),
        ),
    )

    id: str = sqlmodel.Field(primary_key=True, max_length=36)
    alert_id: str = sqlmodel.Field(max_length=36, index=True)
    plan: int = sqlmodel.Field(
        description="Raised and each reopening of an unacknowledged alert: a plan"
    )
    step: int = sqlmodel.Field(description="1-based position in the severity's escalation policy")
    due_at: datetime = _utc_column(nullable=False)
    notify_senior_officials: bool = False
    created_at: datetime = _utc_column(nullable=False)
    fired_at: datetime | None = _utc_column(nullable=True)
    cancelled_at: datetime | None = _utc_column(nullable=True)
    claimed_by: str | None = sqlmodel.Field(
        default=None, max_length=200, description="Replica that fired"
    )


class UsedLinkToken(SQLModel, table=True):
    """Link tokens already honoured: the primary key makes each single use."""

    __tablename__ = "used_link_tokens"

    token_id: str = sqlmodel.Field(primary_key=True, max_length=100)
    purpose: str = sqlmodel.Field(max_length=100)
    subject: str = sqlmodel.Field(max_length=100)
    recipient: str = sqlmodel.Field(max_length=300)
    used_at: datetime = _utc_column(nullable=False)


class DirectoryMember(SQLModel, table=True):
    """Projection of the member directory (member.* events of the activities service)."""

    __tablename__ = "consultation_members"

    member_id: str = sqlmodel.Field(primary_key=True, max_length=50)
    name: str = sqlmodel.Field(max_length=300)
    kind: str = sqlmodel.Field(max_length=50)
    is_co_chair: bool = False
    active: bool = True
    focal_points: list[dict[str, Any]] = sqlmodel.Field(
        default_factory=list, sa_column=Column(JSON)
    )
    version: int


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


def optional_utc(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


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
