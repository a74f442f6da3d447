"""The activity as the API shows it and as its events carry it."""

from __future__ import annotations

from datetime import date
from typing import Any

from bali_common.db import as_utc
from bali_common.events.activities import (
    ActivityParticipant,
    ActivityStatus,
    ActivitySummary,
    ActivityType,
    OutputValue,
    ParticipantRole,
)

from bali_activities.activities.models import Activity
from bali_activities.activities.schemas import ActivityFields, ActivityPublic

#: The fields a client sets, in the order the API documents them.
EDITABLE: tuple[str, ...] = tuple(ActivityFields.model_fields)


def editable_values(activity: Activity) -> dict[str, Any]:
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


def activity_public(activity: Activity) -> ActivityPublic:
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


def activity_summary(activity: Activity) -> ActivitySummary:
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
