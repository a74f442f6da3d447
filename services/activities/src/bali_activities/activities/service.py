"""Use cases of the activity log: each change is one transaction with its version, events, audit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from bali_common.auth import Principal, Role
from bali_common.db import as_utc, utcnow
from bali_common.events.activities import (
    ActivityCreated,
    ActivityDeleted,
    ActivityParticipant,
    ActivityRestored,
    ActivityStatus,
    ActivityStatusChanged,
    ActivitySummary,
    ActivityType,
    ActivityUpdated,
    OutputValue,
    ParticipantRole,
)
from bali_common.events.registry import EventPayload
from bali_common.events.shared import Actor
from bali_common.http.audit import record_audit
from bali_common.http.concurrency import check_version
from bali_common.http.pagination import PageRequest, keyset_page
from bali_common.messaging.outbox import stage_event
from bali_common.problems import FieldProblem, ProblemError, field_error
from opentelemetry import trace
from pydantic import ValidationError
from sqlalchemy import delete, func, or_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from bali_activities.activities.models import (
    STRATEGY,
    ActivitiesPublic,
    Activity,
    ActivityCreate,
    ActivityFields,
    ActivityFilters,
    ActivityHistoryPublic,
    ActivityIndexEntry,
    ActivityPublic,
    ActivityUpdate,
    ActivityVersion,
    ActivityVersionPublic,
    ActorPublic,
    ImportReport,
    ImportRow,
    ImportRowResult,
    IndexKind,
)
from bali_activities.activities.rules import involved_members, latest_today, rule_problems
from bali_activities.members.service import member_states
from bali_activities.refusals import conflict, forbidden, not_found, refusals_audited

#: The fields a client sets, in the order the API documents them.
EDITABLE: tuple[str, ...] = tuple(ActivityFields.model_fields)


# --- who may do what --------------------------------------------------------------------------


def may_read(principal: Principal, activity: Activity) -> bool:
    """Activities are shared cooperation records; a deleted one only its lead and staff still see.

    Routes already require a reading role, so a live activity is readable by every caller here.
    """
    if not activity.deleted:
        return True
    return principal.allows(Role.co_chair, Role.ops) or (
        principal.member_id is not None and principal.member_id == activity.lead_member
    )


def may_write(principal: Principal, activity: Activity) -> bool:
    """A member agency changes only what it leads; admins change everything."""
    return principal.is_admin or (
        principal.member_id == activity.lead_member
        and principal.has_role(Role.member, Role.co_chair)
    )


# --- reads ------------------------------------------------------------------------------------


async def get_activity(
    *, session: AsyncSession, activity_id: str, principal: Principal
) -> ActivityPublic:
    return activity_public(await _visible(session, activity_id, principal, lock=False))


async def list_activities(
    *,
    session: AsyncSession,
    filters: ActivityFilters,
    page: PageRequest,
    principal: Principal,
) -> ActivitiesPublic:
    listed = await keyset_page(
        session,
        _filtered(filters, principal),
        page=page,
        order_by=[col(Activity.created_at), col(Activity.id)],
        descending=True,
    )
    return ActivitiesPublic(
        items=[activity_public(a) for a in listed.rows], next_cursor=listed.next_cursor
    )


async def export_activities(
    *,
    session: AsyncSession,
    filters: ActivityFilters,
    principal: Principal,
    max_rows: int,
) -> list[ActivityPublic]:
    """Every activity the filters match, newest first; refused beyond `max_rows`."""
    newest_first = (col(Activity.created_at).desc(), col(Activity.id).desc())
    query = _filtered(filters, principal).order_by(*newest_first).limit(max_rows + 1)
    rows = list((await session.exec(query)).all())
    if len(rows) > max_rows:
        raise ProblemError(
            422,
            "Export too large",
            f"The filters match more than {max_rows} activities; narrow them.",
            slug="export-too-large",
            errors=[
                FieldProblem(
                    field="query", message=f"matches more than {max_rows}", type="too_large"
                )
            ],
        )
    activities = [activity_public(a) for a in rows]
    # Free the connection before the caller spends CPU time on the file (SQLite has one).
    await session.rollback()
    return activities


async def activity_history(
    *,
    session: AsyncSession,
    activity_id: str,
    principal: Principal,
    page: PageRequest,
) -> ActivityHistoryPublic:
    await _visible(session, activity_id, principal, lock=False)
    listed = await keyset_page(
        session,
        select(ActivityVersion).where(ActivityVersion.activity_id == activity_id),
        page=page,
        order_by=[col(ActivityVersion.version)],
    )
    return ActivityHistoryPublic(
        items=[
            ActivityVersionPublic(
                version=row.version,
                action=row.action,
                at=as_utc(row.at),
                actor=ActorPublic(
                    subject=row.actor_subject, member_id=row.actor_member, name=row.actor_name
                ),
                changed_fields=list(row.changes),
                changes=row.changes,
                trace_id=row.trace_id,
                snapshot=ActivityPublic.model_validate(row.snapshot),
            )
            for row in listed.rows
        ],
        next_cursor=listed.next_cursor,
    )


# --- changes ----------------------------------------------------------------------------------


async def create_activity(
    *,
    session: AsyncSession,
    activity_in: ActivityCreate,
    principal: Principal,
    source: str | None,
    now: datetime | None = None,
) -> ActivityPublic:
    async with refusals_audited(
        session,
        principal=principal,
        action="activity.create",
        resource_type="activity",
        resource_id=None,
        source=source,
    ):
        activity = await _create(
            session,
            activity_in.model_dump(mode="json"),
            prefix="body",
            principal=principal,
            source=source,
            now=now or utcnow(),
        )
        public = activity_public(activity)
        await session.commit()
    return public


async def update_activity(
    *,
    session: AsyncSession,
    activity_id: str,
    changes: ActivityUpdate,
    if_match: str | None,
    principal: Principal,
    source: str | None,
    now: datetime | None = None,
) -> ActivityPublic:
    """Apply the fields sent; nothing changes (no version, no event) when they equal the current."""
    async with refusals_audited(
        session,
        principal=principal,
        action="activity.update",
        resource_type="activity",
        resource_id=activity_id,
        source=source,
    ):
        activity = await _writable(session, activity_id, principal)
        check_version(activity.version, if_match)
        if activity.deleted:
            raise conflict("The activity is deleted; restore it first.", slug="activity-deleted")
        changed = await _change(
            session,
            activity,
            changes.model_dump(mode="json", exclude_unset=True),
            prefix="body",
            principal=principal,
            source=source,
            now=now or utcnow(),
        )
        public = activity_public(activity)
        if changed:
            await session.commit()
    return public


async def set_deleted(
    *,
    session: AsyncSession,
    activity_id: str,
    deleted: bool,
    if_match: str | None,
    principal: Principal,
    source: str | None,
    now: datetime | None = None,
) -> ActivityPublic:
    """Soft-delete (`deleted=True`) or restore: the activity leaves lists and reports, or returns.

    Deleted, it keeps its history. `If-Match` is optional: deleting overwrites no
    field, but a client that sends it is protected from deleting a version it has not seen.
    """
    moment = now or utcnow()
    verb = "delete" if deleted else "restore"
    async with refusals_audited(
        session,
        principal=principal,
        action=f"activity.{verb}",
        resource_type="activity",
        resource_id=activity_id,
        source=source,
    ):
        activity = await _writable(session, activity_id, principal)
        if if_match is not None:
            check_version(activity.version, if_match)
        if activity.deleted == deleted:
            raise conflict(
                "The activity is already deleted." if deleted else "The activity is not deleted.",
                slug="activity-already-deleted" if deleted else "activity-not-deleted",
            )
        activity.deleted = deleted
        activity.deleted_at = moment if deleted else None
        activity.version += 1
        activity.updated_at = moment
        session.add(activity)
        _record(
            session,
            activity,
            action="deleted" if deleted else "restored",
            changes={"deleted": {"from": not deleted, "to": deleted}},
            principal=principal,
            source=source,
            now=moment,
        )
        public = activity_public(activity)
        await session.commit()
    return public


async def import_activities(
    *,
    session: AsyncSession,
    rows: Sequence[ImportRow],
    file_format: str,
    dry_run: bool,
    principal: Principal,
    source: str | None,
    now: datetime | None = None,
) -> ImportReport:
    """Create or update an activity per row, all or nothing.

    Every row is applied inside one transaction exactly as a real import would
    apply it; a dry run, or a file with any row error, is then rolled back, so
    the report is what the real import does and a refused file changes nothing.
    """
    moment = now or utcnow()
    async with refusals_audited(
        session,
        principal=principal,
        action="activity.import",
        resource_type="activity",
        resource_id=None,
        source=source,
    ):
        results: list[ImportRowResult] = []
        first_row_of: dict[str, int] = {}
        for row in rows:
            results.append(
                await _import_row(
                    session,
                    row,
                    first_row_of=first_row_of,
                    dry_run=dry_run,
                    principal=principal,
                    source=source,
                    now=moment,
                )
            )
        failed = [result for result in results if result.action == "error"]
        if dry_run or failed:
            await session.rollback()
        if failed and not dry_run:
            raise ProblemError(
                422,
                "Import refused",
                f"{len(failed)} of {len(rows)} rows have errors; nothing was imported. "
                "A dry run reports every row.",
                slug="import-refused",
                errors=[problem for result in failed for problem in result.errors],
            )
        report = ImportReport(
            dry_run=dry_run,
            applied=not dry_run,
            format="xlsx" if file_format == "xlsx" else "csv",
            rows=len(rows),
            created=sum(1 for r in results if r.action == "create"),
            updated=sum(1 for r in results if r.action == "update"),
            unchanged=sum(1 for r in results if r.action == "unchanged"),
            failed=len(failed),
            results=results,
        )
        record_audit(
            session,
            principal=principal,
            action="activity.import.dry_run" if dry_run else "activity.import",
            resource_type="activity",
            resource_id=None,
            source=source,
            details=report.model_dump(include={"rows", "created", "updated", "unchanged"}),
        )
        await session.commit()
    return report


# --- the steps the use cases share ------------------------------------------------------------


async def _import_row(
    session: AsyncSession,
    row: ImportRow,
    *,
    first_row_of: dict[str, int],
    dry_run: bool,
    principal: Principal,
    source: str | None,
    now: datetime,
) -> ImportRowResult:
    prefix = f"rows.{row.row}"
    if row.problems:
        return ImportRowResult(row=row.row, action="error", errors=list(row.problems))
    try:
        if row.activity_id is None:
            created = await _create(
                session, row.values, prefix=prefix, principal=principal, source=source, now=now
            )
            return ImportRowResult(
                row=row.row, action="create", activity_id=None if dry_run else created.id
            )
        if row.activity_id in first_row_of:
            raise field_error(
                f"{prefix}.id", f"the same activity as row {first_row_of[row.activity_id]}"
            )
        first_row_of[row.activity_id] = row.row
        found = await _locked(session, row.activity_id)
        if found is None or not may_read(principal, found):
            raise field_error(f"{prefix}.id", "no such activity")
        activity = found
        if not may_write(principal, activity):
            raise forbidden("Only the lead member may change this activity.", field=f"{prefix}.id")
        if activity.deleted:
            raise field_error(f"{prefix}.id", "the activity is deleted; restore it first")
        if row.version is not None and row.version != activity.version:
            raise field_error(
                f"{prefix}.version", f"stale: the activity is now at version {activity.version}"
            )
        changed = await _change(
            session,
            activity,
            row.values,
            prefix=prefix,
            principal=principal,
            source=source,
            now=now,
        )
    except ProblemError as error:
        problems = error.errors or [
            FieldProblem(field=prefix, message=error.detail or error.title, type="value_error")
        ]
        return ImportRowResult(row=row.row, action="error", errors=problems)
    return ImportRowResult(
        row=row.row,
        action="update" if changed else "unchanged",
        activity_id=activity.id,
        changed_fields=changed,
    )


async def _create(
    session: AsyncSession,
    values: dict[str, Any],
    *,
    prefix: str,
    principal: Principal,
    source: str | None,
    now: datetime,
) -> Activity:
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
    activity = Activity(
        id=str(uuid.uuid4()), version=1, created_at=now, updated_at=now, **_row(data)
    )
    session.add(activity)
    # The index and version rows reference the activity: insert it first.
    await session.flush()
    await _sync_index(session, activity.id, old=set(), new=_index_values(activity))
    _record(
        session,
        activity,
        action="created",
        changes={name: {"from": None, "to": data[name]} for name in EDITABLE if data[name]},
        principal=principal,
        source=source,
        now=now,
    )
    return activity


async def _change(
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
    old_index = _index_values(activity)
    previous_status = activity.status
    for name, value in _row(data).items():
        setattr(activity, name, value)
    activity.version += 1
    activity.updated_at = now
    session.add(activity)
    await _sync_index(session, activity.id, old=old_index, new=_index_values(activity))
    _record(
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


def _record(
    session: AsyncSession,
    activity: Activity,
    *,
    action: str,
    changes: dict[str, dict[str, Any]],
    principal: Principal,
    source: str | None,
    now: datetime,
    previous_status: str | None = None,
) -> None:
    """Stage the version row, one event per kind of change, and the audit row."""
    context = trace.get_current_span().get_span_context()
    trace_id = f"{context.trace_id:032x}" if context.is_valid else None
    session.add(
        ActivityVersion(
            activity_id=activity.id,
            version=activity.version,
            action=action,
            snapshot=activity_public(activity).model_dump(mode="json"),
            changes=changes,
            actor_subject=principal.subject,
            actor_member=principal.member_id,
            actor_name=principal.name,
            at=now,
            trace_id=trace_id,
        )
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
    record_audit(
        session,
        principal=principal,
        action=f"activity.{_AUDIT_VERBS[action]}",
        resource_type="activity",
        resource_id=activity.id,
        source=source,
        details={"version": activity.version, "changed_fields": list(changes)},
    )


_AUDIT_VERBS = {
    "created": "create",
    "updated": "update",
    "status_changed": "update",
    "deleted": "delete",
    "restored": "restore",
}


async def _visible(
    session: AsyncSession, activity_id: str, principal: Principal, *, lock: bool
) -> Activity:
    """The activity, or 404 alike for a missing one and one the caller may not see."""
    activity = (
        await _locked(session, activity_id) if lock else await session.get(Activity, activity_id)
    )
    if activity is None or not may_read(principal, activity):
        raise not_found("activity")
    return activity


async def _writable(session: AsyncSession, activity_id: str, principal: Principal) -> Activity:
    activity = await _visible(session, activity_id, principal, lock=True)
    if not may_write(principal, activity):
        raise forbidden(
            f"Only the lead member ({activity.lead_member}) or an administrator may change "
            "this activity."
        )
    return activity


async def _locked(session: AsyncSession, activity_id: str) -> Activity | None:
    # The row lock queues concurrent writers on PostgreSQL, so one If-Match wins and
    # the rest see the new version; SQLite serialises writers on its one connection.
    return await session.get(Activity, activity_id, with_for_update=True, populate_existing=True)


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


def _row(data: dict[str, Any]) -> dict[str, Any]:
    """Column values from normalised field values, with the derived columns."""
    values = dict(data)
    for name in ("planned_start", "planned_end", "actual_start", "actual_end"):
        values[name] = date.fromisoformat(data[name]) if data[name] else None
    values["areas"] = sorted({STRATEGY.item(number).area_number for number in data["items"]})
    start = values["actual_start"] or values["planned_start"]
    values["window_start"] = start
    values["window_end"] = values["actual_end"] or values["planned_end"] or start
    return values


def editable_values(activity: Activity) -> dict[str, Any]:
    """The client-set fields as stored, in JSON types (what `_checked` returns)."""
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


def _index_values(activity: Activity) -> set[tuple[str, str]]:
    values = {(IndexKind.item.value, str(number)) for number in activity.items}
    values.add((IndexKind.member.value, activity.lead_member))
    values |= {(IndexKind.member.value, p["member_id"]) for p in activity.participants}
    values |= {(IndexKind.tag.value, tag) for tag in activity.tags}
    values |= {(IndexKind.country.value, country) for country in activity.countries}
    return values


async def _sync_index(
    session: AsyncSession, activity_id: str, *, old: set[tuple[str, str]], new: set[tuple[str, str]]
) -> None:
    for kind, value in sorted(old - new):
        await session.exec(
            delete(ActivityIndexEntry).where(
                col(ActivityIndexEntry.activity_id) == activity_id,
                col(ActivityIndexEntry.kind) == kind,
                col(ActivityIndexEntry.value) == value,
            )
        )
    session.add_all(
        ActivityIndexEntry(activity_id=activity_id, kind=kind, value=value)
        for kind, value in sorted(new - old)
    )


def _indexed(kind: IndexKind, values: Sequence[str]) -> ColumnElement[bool]:
    matching = select(ActivityIndexEntry.activity_id).where(
        col(ActivityIndexEntry.kind) == kind.value, col(ActivityIndexEntry.value).in_(values)
    )
    return col(Activity.id).in_(matching)


def _filtered(filters: ActivityFilters, principal: Principal) -> SelectOfScalar[Activity]:
    query = select(Activity)
    if not filters.include_deleted:
        query = query.where(col(Activity.deleted).is_(False))
    elif not principal.allows(Role.co_chair, Role.ops):
        query = query.where(
            or_(
                col(Activity.deleted).is_(False),
                col(Activity.lead_member) == (principal.member_id or ""),
            )
        )
    if filters.item is not None:
        query = query.where(_indexed(IndexKind.item, [str(filters.item)]))
    if filters.area is not None:
        numbers = [str(item.number) for item in STRATEGY.area(filters.area).items]
        query = query.where(_indexed(IndexKind.item, numbers))
    if filters.member is not None:
        query = query.where(_indexed(IndexKind.member, [filters.member]))
    if filters.lead_member is not None:
        query = query.where(col(Activity.lead_member) == filters.lead_member)
    if filters.status is not None:
        query = query.where(col(Activity.status) == filters.status.value)
    if filters.type is not None:
        query = query.where(col(Activity.type) == filters.type.value)
    if filters.tag is not None:
        query = query.where(_indexed(IndexKind.tag, [filters.tag]))
    if filters.country is not None:
        query = query.where(_indexed(IndexKind.country, [filters.country]))
    if filters.date_from is not None:
        query = query.where(col(Activity.window_end) >= filters.date_from)
    if filters.date_to is not None:
        query = query.where(col(Activity.window_start) <= filters.date_to)
    if filters.q:
        needle = filters.q.lower()
        tagged = select(ActivityIndexEntry.activity_id).where(
            col(ActivityIndexEntry.kind) == IndexKind.tag.value,
            col(ActivityIndexEntry.value).contains(needle, autoescape=True),
        )
        query = query.where(
            or_(
                func.lower(col(Activity.title)).contains(needle, autoescape=True),
                func.lower(col(Activity.description)).contains(needle, autoescape=True),
                col(Activity.id).in_(tagged),
            )
        )
    return query


# --- representations --------------------------------------------------------------------------


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
