"""Use cases that change one activity: each is one transaction with its version, events, audit."""

from __future__ import annotations

from datetime import datetime

from bali_common.auth import Principal
from bali_common.db import utcnow
from bali_common.http.concurrency import check_version
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_activities.activities import access, steps
from bali_activities.activities.representation import activity_public
from bali_activities.activities.schemas import ActivityCreate, ActivityPublic, ActivityUpdate
from bali_activities.refusals import conflict, refusals_audited


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
        public = await steps.create(
            session,
            activity_in.model_dump(mode="json"),
            prefix="body",
            principal=principal,
            source=source,
            now=now or utcnow(),
        )
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
        activity = await access.writable(session, activity_id, principal)
        check_version(activity.version, if_match)
        if activity.deleted:
            raise conflict("The activity is deleted; restore it first.", slug="activity-deleted")
        changed = await steps.change(
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
        activity = await access.writable(session, activity_id, principal)
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
        public = await steps.record(
            session,
            activity,
            action="deleted" if deleted else "restored",
            changes={"deleted": {"from": not deleted, "to": deleted}},
            principal=principal,
            source=source,
            now=moment,
        )
        await session.commit()
    return public
