"""The activity as the API shows it and as its events carry it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from bali_common.db import as_utc
from bali_common.events.activities import (
    ActivityParticipant,
    ActivityStatus,
    ActivitySummary,
    ActivityType,
    OutputValue,
    ParticipantRole,
)

from bali_activities.activities.schemas import ActivityFields, ActivityPublic

#: The fields a client sets, in the order the API documents them.
EDITABLE: tuple[str, ...] = tuple(ActivityFields.model_fields)


class ActivityState(Protocol):
    """What the representations read of an activity: a loaded `Activity`, or the values a
    creation has just inserted (`InsertedActivity`)."""

    @property
    def id(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def strategy_id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def items(self) -> list[int]: ...
    @property
    def areas(self) -> list[int]: ...
    @property
    def type(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def lead_member(self) -> str: ...
    @property
    def participants(self) -> list[dict[str, str]]: ...
    @property
    def planned_start(self) -> date | None: ...
    @property
    def planned_end(self) -> date | None: ...
    @property
    def actual_start(self) -> date | None: ...
    @property
    def actual_end(self) -> date | None: ...
    @property
    def countries(self) -> list[str]: ...
    @property
    def outputs(self) -> list[dict[str, Any]]: ...
    @property
    def tags(self) -> list[str]: ...
    @property
    def documents(self) -> list[dict[str, str]]: ...
    @property
    def related_alert_id(self) -> str | None: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...
    @property
    def deleted(self) -> bool: ...
    @property
    def deleted_at(self) -> datetime | None: ...


@dataclass(frozen=True, slots=True)
class InsertedActivity:
    """The column values of an activity just inserted with Core: read like a loaded row, at
    the cost of a plain object instead of a tracked ORM instance."""

    id: str
    version: int
    strategy_id: str
    title: str
    description: str
    items: list[int]
    areas: list[int]
    type: str
    status: str
    lead_member: str
    participants: list[dict[str, str]]
    members: list[str]
    planned_start: date | None
    planned_end: date | None
    actual_start: date | None
    actual_end: date | None
    window_start: date | None
    window_end: date | None
    countries: list[str]
    outputs: list[dict[str, Any]]
    tags: list[str]
    documents: list[dict[str, str]]
    related_alert_id: str | None
    created_at: datetime
    updated_at: datetime
    deleted: bool
    deleted_at: datetime | None


def creation_changes(snapshot: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """What a creation changed, read from its version's snapshot: each field set, from nothing.

    The snapshot's participants list the lead first; the fields as sent name only the others.
    """
    fields = {name: snapshot[name] for name in EDITABLE}
    fields["participants"] = list(snapshot["participants"][1:])
    return {name: {"from": None, "to": value} for name, value in fields.items() if value}


def editable_values(activity: ActivityState) -> dict[str, Any]:
    """The client-set fields as stored, in JSON types (what `steps._checked` returns)."""
    return {
        "title": activity.title,
        "description": activity.description,
        "items": list(activity.items),
        "type": activity.type,
        "status": activity.status,
        "lead_member": activity.lead_member,
        "participants": [dict(p) for p in activity.participants],
        "planned_start": _iso(activity.planned_start),
        "planned_end": _iso(activity.planned_end),
        "actual_start": _iso(activity.actual_start),
        "actual_end": _iso(activity.actual_end),
        "countries": list(activity.countries),
        "outputs": [dict(o) for o in activity.outputs],
        "tags": list(activity.tags),
        "documents": [dict(d) for d in activity.documents],
        "related_alert_id": activity.related_alert_id,
    }


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


def activity_public(activity: ActivityState) -> ActivityPublic:
    values = editable_values(activity)
    values["participants"] = [
        {"member_id": activity.lead_member, "role": ParticipantRole.lead.value},
        *values["participants"],
    ]
    return ActivityPublic.model_validate(
        {
            **values,
            "id": activity.id,
            "version": activity.version,
            "strategy_id": activity.strategy_id,
            "areas": list(activity.areas),
            "created_at": as_utc(activity.created_at),
            "updated_at": as_utc(activity.updated_at),
            "deleted": activity.deleted,
            "deleted_at": as_utc(activity.deleted_at) if activity.deleted_at else None,
        }
    )


def activity_summary(activity: ActivityState) -> ActivitySummary:
    """The activity as its events carry it (the contract in `bali_common.events.activities`)."""
    return ActivitySummary(
        activity_id=activity.id,
        version=activity.version,
        strategy_id=activity.strategy_id,
        title=activity.title,
        item_numbers=list(activity.items),
        area_numbers=list(activity.areas),
        type=ActivityType(activity.type),
        status=ActivityStatus(activity.status),
        lead_member=activity.lead_member,
        participating_members=[p["member_id"] for p in activity.participants],
        participants=[
            ActivityParticipant(member_id=activity.lead_member, role=ParticipantRole.lead),
            *(
                ActivityParticipant(member_id=p["member_id"], role=ParticipantRole(p["role"]))
                for p in activity.participants
            ),
        ],
        countries=list(activity.countries),
        planned_start=activity.planned_start,
        planned_end=activity.planned_end,
        actual_start=activity.actual_start,
        actual_end=activity.actual_end,
        tags=list(activity.tags),
        related_alert_id=activity.related_alert_id,
        outputs=[OutputValue.model_validate(output) for output in activity.outputs],
        deleted=activity.deleted,
    )
