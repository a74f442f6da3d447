"""Reads of the activity log: one activity, filtered lists and exports, a version history."""

from __future__ import annotations

from collections.abc import Sequence

from bali_common.auth import Principal, Role
from bali_common.db import as_utc
from bali_common.http.pagination import PageRequest, keyset_page
from bali_common.problems import FieldProblem, ProblemError
from sqlalchemy import func, or_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from bali_activities.activities import access
from bali_activities.activities.models import (
    STRATEGY,
    Activity,
    ActivityIndexEntry,
    ActivityVersion,
    IndexKind,
)
from bali_activities.activities.representation import activity_public
from bali_activities.activities.schemas import (
    ActivitiesPublic,
    ActivityFilters,
    ActivityHistoryPublic,
    ActivityPublic,
    ActivityVersionPublic,
    ActorPublic,
)


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
    await access.visible(session, activity_id, principal, lock=False)
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


# --- list filters -----------------------------------------------------------------------------


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
