"""Reads of the activity log: one activity, filtered lists and exports, a version history."""

from __future__ import annotations

from collections.abc import Sequence

from bali_common.auth import Principal
from bali_common.db import as_utc, table_of
from bali_common.http.pagination import PageRequest, keyset_page
from bali_common.problems import FieldProblem, ProblemError
from sqlalchemy import ARRAY, Text, cast, exists, func, or_, type_coerce
from sqlalchemy.dialects.postgresql import JSONB, array
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from bali_activities.activities import access
from bali_activities.activities.models import STRATEGY, Activity, ActivityVersion
from bali_activities.activities.representation import activity_public, creation_changes
from bali_activities.activities.schemas import (
    ActivitiesPublic,
    ActivityFilters,
    ActivityHistoryPublic,
    ActivityPublic,
    ActivityVersionPublic,
    ActorPublic,
)
from bali_activities.members.queries import sees_every_member

_ACTIVITIES = table_of(Activity)


async def get_activity(
    *, session: AsyncSession, activity_id: str, principal: Principal
) -> ActivityPublic:
    return activity_public(await access.visible(session, activity_id, principal, lock=False))


async def list_activities(
    *,
    session: AsyncSession,
    filters: ActivityFilters,
    page: PageRequest,
    principal: Principal,
) -> ActivitiesPublic:
    listed = await keyset_page(
        session,
        _filtered(
            filters,
            principal,
            dialect=_dialect(session),
            staff=filters.include_deleted and await sees_every_member(session, principal),
        ),
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
    query = (
        _filtered(
            filters,
            principal,
            dialect=_dialect(session),
            staff=filters.include_deleted and await sees_every_member(session, principal),
        )
        .order_by(*newest_first)
        .limit(max_rows + 1)
    )
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
    await access.visible(session, activity_id, principal, lock=False)
    listed = await keyset_page(
        session,
        select(ActivityVersion).where(ActivityVersion.activity_id == activity_id),
        page=page,
        order_by=[col(ActivityVersion.version)],
    )
    return ActivityHistoryPublic(
        items=[_version_public(row) for row in listed.rows], next_cursor=listed.next_cursor
    )


def _version_public(row: ActivityVersion) -> ActivityVersionPublic:
    # A creation's changes are stored once, as its snapshot (see `ActivityVersion`); a
    # creation written before that kept them in full, and reads back as stored.
    created = row.action == "created" and not row.changes
    changes = creation_changes(row.snapshot) if created else row.changes
    return ActivityVersionPublic(
        version=row.version,
        action=row.action,
        at=as_utc(row.at),
        actor=ActorPublic(
            subject=row.actor_subject, member_id=row.actor_member, name=row.actor_name
        ),
        changed_fields=list(changes),
        changes=changes,
        trace_id=row.trace_id,
        snapshot=ActivityPublic.model_validate(row.snapshot),
    )


# --- list filters -----------------------------------------------------------------------------


def _holds_any(
    name: str, values: Sequence[str] | Sequence[int], *, dialect: str
) -> ColumnElement[bool]:
    """The JSON array in the activity column `name` holds one of `values`.

    PostgreSQL answers from the column's GIN index: `?|` for text elements, `@>` per value for
    numbers (`?|` matches only text). SQLite reads the array with `json_each`.
    """
    column = _ACTIVITIES.c[name]
    if dialect == "postgresql":
        document = type_coerce(column, JSONB)
        if all(isinstance(value, str) for value in values):
            text_elements: ColumnElement[bool] = document.has_any(cast(array(values), ARRAY(Text)))
            return text_elements
        return or_(*(document.contains([value]) for value in values))
    elements = func.json_each(column).table_valued("value")
    return exists().select_from(elements).where(elements.c.value.in_(values))


def _holds_text_containing(name: str, needle: str, *, dialect: str) -> ColumnElement[bool]:
    """A text element of the JSON array in the activity column `name` contains `needle`."""
    column = _ACTIVITIES.c[name]
    if dialect == "postgresql":
        elements = func.jsonb_array_elements_text(type_coerce(column, JSONB)).table_valued("value")
    else:
        elements = func.json_each(column).table_valued("value")
    return exists().select_from(elements).where(elements.c.value.contains(needle, autoescape=True))


def _filtered(
    filters: ActivityFilters, principal: Principal, *, dialect: str, staff: bool
) -> SelectOfScalar[Activity]:
    query = select(Activity)
    if not filters.include_deleted:
        query = query.where(col(Activity.deleted).is_(False))
    elif not staff:
        query = query.where(
            or_(
                col(Activity.deleted).is_(False),
                col(Activity.lead_member) == (principal.member_id or ""),
            )
        )
    if filters.item is not None:
        query = query.where(_holds_any("items", [filters.item], dialect=dialect))
    if filters.area is not None:
        numbers = [item.number for item in STRATEGY.area(filters.area).items]
        query = query.where(_holds_any("items", numbers, dialect=dialect))
    if filters.member is not None:
        query = query.where(_holds_any("members", [filters.member], dialect=dialect))
    if filters.lead_member is not None:
        query = query.where(col(Activity.lead_member) == filters.lead_member)
    if filters.status is not None:
        query = query.where(col(Activity.status) == filters.status.value)
    if filters.type is not None:
        query = query.where(col(Activity.type) == filters.type.value)
    if filters.tag is not None:
        query = query.where(_holds_any("tags", [filters.tag], dialect=dialect))
    if filters.country is not None:
        query = query.where(_holds_any("countries", [filters.country], dialect=dialect))
    if filters.date_from is not None:
        query = query.where(col(Activity.window_end) >= filters.date_from)
    if filters.date_to is not None:
        query = query.where(col(Activity.window_start) <= filters.date_to)
    if filters.q:
        needle = filters.q.lower()
        query = query.where(
            or_(
                func.lower(col(Activity.title)).contains(needle, autoescape=True),
                func.lower(col(Activity.description)).contains(needle, autoescape=True),
                _holds_text_containing("tags", needle, dialect=dialect),
            )
        )
    return query


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name
