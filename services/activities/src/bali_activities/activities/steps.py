"""Steps every change shares: validate, check the rules, store, record version, events and audit."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from bali_common.auth import Principal
from bali_common.db import execute_core, table_of
from bali_common.events.activities import (
    ActivityCreated,
    ActivityDeleted,
    ActivityRestored,
    ActivityStatus,
    ActivityStatusChanged,
    ActivityUpdated,
)
from bali_common.events.registry import EventPayload
from bali_common.events.shared import Actor
from bali_common.http.audit import write_audit
from bali_common.messaging.outbox import stage_event
from bali_common.problems import FieldProblem, ProblemError
from opentelemetry import trace
from pydantic import ValidationError
from sqlalchemy import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_activities.activities.models import STRATEGY, Activity, ActivityVersion
from bali_activities.activities.representation import (
    EDITABLE,
    ActivityState,
    InsertedActivity,
    activity_public,
    activity_summary,
    creation_changes,
    editable_values,
)
from bali_activities.activities.rules import involved_members, latest_today, rule_problems
from bali_activities.activities.schemas import ActivityFields, ActivityPublic
from bali_activities.members.queries import member_states
from bali_activities.refusals import forbidden

#: Built once: executed with each row's values, they are compiled once (see `execute_core`).
_INSERT_ACTIVITY = insert(table_of(Activity))
_INSERT_VERSION = insert(table_of(ActivityVersion))


async def create(
    session: AsyncSession,
    values: dict[str, Any],
    *,
    prefix: str,
    principal: Principal,
    source: str | None,
    now: datetime,
) -> ActivityPublic:
    """Insert a new activity from the field values sent, with its first version; the activity
    as the API shows it."""
    lead = values.get("lead_member")
    if not principal.is_admin:
        if principal.member_id is None:
            raise forbidden("Your token names no member agency to lead the activity.")
        if lead is not None and lead != principal.member_id:
            raise forbidden(
                "A member agency logs only activities it leads.", field=f"{prefix}.lead_member"
            )
        values = {**values, "lead_member": principal.member_id}
    fields = _validated(values, prefix)
    data = await _checked(session, fields, prefix=prefix, now=now, already_involved=frozenset())
    row: dict[str, Any] = {
        **_row(data),
        "id": str(uuid.uuid4()),
        "version": 1,
        "strategy_id": STRATEGY.id,
        "created_at": now,
        "updated_at": now,
        "deleted": False,
        "deleted_at": None,
    }
    # One Core INSERT: no ORM object to build, track and flush for a row written once here.
    await execute_core(session, _INSERT_ACTIVITY, row)
    return await record(
        session,
        InsertedActivity(**row),
        action="created",
        # Stored once, as the version's snapshot: `creation_changes` reads them back from it.
        changes={},
        principal=principal,
        source=source,
        now=now,
    )


async def change(
    session: AsyncSession,
    activity: Activity,
    sent: dict[str, Any],
    *,
    prefix: str,
    principal: Principal,
    source: str | None,
    now: datetime,
) -> list[str]:
    """Merge `sent` into the activity, check the rules, record a version; the changed fields."""
    if (
        sent.get("lead_member", activity.lead_member) != activity.lead_member
        and not principal.is_admin
    ):
        raise forbidden(
            "Only an administrator hands an activity to another lead member.",
            field=f"{prefix}.lead_member",
        )
    current = editable_values(activity)
    fields = _validated({**current, **sent}, prefix)
    involved = frozenset({activity.lead_member, *(p["member_id"] for p in activity.participants)})
    data = await _checked(session, fields, prefix=prefix, now=now, already_involved=involved)
    changed = [name for name in EDITABLE if data[name] != current[name]]
    if not changed:
        return []
    previous_status = activity.status
    for name, value in _row(data).items():
        setattr(activity, name, value)
    activity.version += 1
    activity.updated_at = now
    session.add(activity)
    await record(
        session,
        activity,
        action="status_changed" if "status" in changed else "updated",
        changes={name: {"from": current[name], "to": data[name]} for name in changed},
        principal=principal,
        source=source,
        now=now,
        previous_status=previous_status,
    )
    return changed


async def record(
    session: AsyncSession,
    activity: ActivityState,
    *,
    action: str,
    changes: dict[str, dict[str, Any]],
    principal: Principal,
    source: str | None,
    now: datetime,
    previous_status: str | None = None,
) -> ActivityPublic:
    """Write the version row and the audit row (Core INSERTs, in the caller's transaction) and
    stage one event per kind of change in its outbox; the activity as the API shows it, built
    once for the version's snapshot and the answer."""
    context = trace.get_current_span().get_span_context()
    trace_id = f"{context.trace_id:032x}" if context.is_valid else None
    public = activity_public(activity)
    snapshot = public.model_dump(mode="json")
    await execute_core(
        session,
        _INSERT_VERSION,
        {
            "activity_id": activity.id,
            "version": activity.version,
            "action": action,
            "snapshot": snapshot,
            "changes": changes,
            "actor_subject": principal.subject,
            "actor_member": principal.member_id,
            "actor_name": principal.name,
            "at": now,
            "trace_id": trace_id,
        },
    )
    common: dict[str, Any] = {
        "activity": activity_summary(activity),
        "actor": Actor(
            subject=principal.subject, member_id=principal.member_id, name=principal.name
        ),
        "occurred_at": now,
    }
    events: list[EventPayload] = []
    if action == "created":
        events.append(ActivityCreated(**common))
    elif action == "deleted":
        events.append(ActivityDeleted(**common))
    elif action == "restored":
        events.append(ActivityRestored(**common))
    else:
        if "status" in changes and previous_status is not None:
            events.append(
                ActivityStatusChanged(**common, previous_status=ActivityStatus(previous_status))
            )
        others = [name for name in changes if name != "status"]
        if others:
            events.append(ActivityUpdated(**common, changed_fields=others))
    for event in events:
        stage_event(session, event, subject=activity.id)
    changed_fields = list(creation_changes(snapshot) if action == "created" else changes)
    await write_audit(
        session,
        principal=principal,
        action=f"activity.{_AUDIT_VERBS[action]}",
        resource_type="activity",
        resource_id=activity.id,
        source=source,
        details={"version": activity.version, "changed_fields": changed_fields},
    )
    return public


_AUDIT_VERBS = {
    "created": "create",
    "updated": "update",
    "status_changed": "update",
    "deleted": "delete",
    "restored": "restore",
}


# --- validation -------------------------------------------------------------------------------


def _validated(values: dict[str, Any], prefix: str) -> ActivityFields:
    try:
        return ActivityFields.model_validate(values)
    except ValidationError as error:
        raise _rejected(
            [
                FieldProblem(
                    field=".".join([prefix, *(str(part) for part in problem["loc"])]),
                    message=problem["msg"],
                    type=problem["type"],
                )
                for problem in error.errors()
            ]
        ) from None


async def _checked(
    session: AsyncSession,
    fields: ActivityFields,
    *,
    prefix: str,
    now: datetime,
    already_involved: frozenset[str],
) -> dict[str, Any]:
    """The rules checked and the values normalised as they are stored (JSON types)."""
    members = await member_states(session, involved_members(fields))
    problems = rule_problems(
        fields,
        prefix=prefix,
        today=latest_today(now),
        members=members,
        already_involved=already_involved,
    )
    if problems:
        raise _rejected(problems)
    data = fields.model_dump(mode="json")
    data["items"] = sorted(data["items"])
    data["participants"] = [p for p in data["participants"] if p["member_id"] != fields.lead_member]
    data["countries"] = list(dict.fromkeys(data["countries"]))
    data["tags"] = list(dict.fromkeys(data["tags"]))
    return data


def _rejected(problems: list[FieldProblem]) -> ProblemError:
    fields = ", ".join(dict.fromkeys(problem.field for problem in problems))
    return ProblemError(
        422,
        "Request validation failed",
        f"Invalid field{'s' if len(problems) > 1 else ''}: {fields}",
        slug="validation-error",
        errors=problems,
    )


# --- stored values and the list-filter index --------------------------------------------------


def _row(data: dict[str, Any]) -> dict[str, Any]:
    """Column values from normalised field values, with the derived columns (`areas`, the
    date window and `members`, which the list filters read)."""
    values = dict(data)
    for name in ("planned_start", "planned_end", "actual_start", "actual_end"):
        values[name] = date.fromisoformat(data[name]) if data[name] else None
    values["areas"] = sorted({STRATEGY.item(number).area_number for number in data["items"]})
    start = values["actual_start"] or values["planned_start"]
    values["window_start"] = start
    values["window_end"] = values["actual_end"] or values["planned_end"] or start
    values["members"] = sorted(
        {data["lead_member"], *(p["member_id"] for p in data["participants"])}
    )
    return values
