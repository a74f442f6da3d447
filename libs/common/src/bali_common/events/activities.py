"""Events of the activities stream: cooperation activities logged against the strategy items.

Every event carries the activity's current summary with its version, so
projections upsert it and drop anything older than what they hold.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from bali_common.events.registry import EventPayload, event_type
from bali_common.events.shared import Actor
from bali_common.events.topics import Stream


class ActivityType(StrEnum):
    workshop = "workshop"
    training = "training"
    joint_operation = "joint_operation"
    public_information_campaign = "public_information_campaign"
    research = "research"
    policy_dialogue = "policy_dialogue"
    table_top_exercise = "table_top_exercise"
    meeting = "meeting"
    secondment = "secondment"
    funding_contribution = "funding_contribution"
    other = "other"


class ActivityStatus(StrEnum):
    planned = "planned"
    ongoing = "ongoing"
    completed = "completed"
    cancelled = "cancelled"
    suspended = "suspended"


class ParticipantRole(StrEnum):
    lead = "lead"
    co_lead = "co_lead"
    participant = "participant"
    funder = "funder"


class ActivityParticipant(BaseModel):
    """A member taking part in an activity, and in what role."""

    model_config = ConfigDict(frozen=True)

    member_id: str
    role: ParticipantRole


class SexDisaggregation(BaseModel):
    """How much of an output value was women, men, or other/unrecorded."""

    model_config = ConfigDict(frozen=True)

    female: float | None = None
    male: float | None = None
    other: float | None = None


class AgeGroupValue(BaseModel):
    """The part of an output value in one age group, e.g. '18-24' or '60+'."""

    model_config = ConfigDict(frozen=True)

    age_group: str
    value: float


class OutputValue(BaseModel):
    """One indicator value an activity produced, e.g. officers trained: 40 (women 18)."""

    model_config = ConfigDict(frozen=True)

    indicator: str
    value: float
    unit: str | None = None
    by_sex: SexDisaggregation | None = None
    by_age: list[AgeGroupValue] = Field(default_factory=list)


class ActivitySummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    activity_id: str
    version: int = Field(ge=1, description="Increases with every change; drop older versions")
    strategy_id: str = "adelaide-2023"
    title: str
    item_numbers: list[int] = Field(description="Strategy items (1..25) the activity serves")
    area_numbers: list[int] = Field(description="Areas of those items, derived by the service")
    type: ActivityType
    status: ActivityStatus
    lead_member: str = Field(description="Member id of the lead agency, e.g. 'AU' or 'IOM'")
    participating_members: list[str] = Field(
        default_factory=list, description="Members other than the lead that take part"
    )
    participants: list[ActivityParticipant] = Field(
        default_factory=list, description="Every member involved with its role, the lead first"
    )
    countries: list[str] = Field(default_factory=list)
    planned_start: date | None = None
    planned_end: date | None = None
    actual_start: date | None = None
    actual_end: date | None = None
    tags: list[str] = Field(default_factory=list)
    related_alert_id: str | None = None
    outputs: list[OutputValue] = Field(default_factory=list)
    deleted: bool = False


class ActivityEvent(EventPayload):
    activity: ActivitySummary
    actor: Actor
    occurred_at: datetime


@event_type("activity.created", stream=Stream.activities)
class ActivityCreated(ActivityEvent):
    """A member agency logged a new cooperation activity."""


@event_type("activity.updated", stream=Stream.activities)
class ActivityUpdated(ActivityEvent):
    """An activity's details changed (status changes have their own event)."""

    changed_fields: list[str] = Field(
        default_factory=list, description="The fields that changed, other than status"
    )


@event_type("activity.status_changed", stream=Stream.activities)
class ActivityStatusChanged(ActivityEvent):
    """An activity moved to another status (planned, ongoing, completed, ...)."""

    previous_status: ActivityStatus


@event_type("activity.deleted", stream=Stream.activities)
class ActivityDeleted(ActivityEvent):
    """An activity was soft-deleted; it can be restored."""


@event_type("activity.restored", stream=Stream.activities)
class ActivityRestored(ActivityEvent):
    """A soft-deleted activity was restored."""
