"""Who may read and change an activity, and loading one for a read or a change."""

from __future__ import annotations

from bali_common.auth import Principal, Role
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_activities.activities.models import Activity
from bali_activities.members.queries import sees_every_member
from bali_activities.refusals import forbidden, not_found

# --- who may do what --------------------------------------------------------------------------


def may_read(principal: Principal, activity: Activity, *, staff: bool) -> bool:
    """Activities are shared cooperation records; a deleted one only its lead and those who see
    every member's records (`staff`: `members.queries.sees_every_member`) still see.

    Routes already require a reading role, so a live activity is readable by every caller here.
    """
    if not activity.deleted:
        return True
    return staff or (
        principal.member_id is not None and principal.member_id == activity.lead_member
    )


def may_write(principal: Principal, activity: Activity) -> bool:
    """A member agency changes only what it leads; admins change everything."""
    return principal.is_admin or (
        principal.member_id == activity.lead_member
        and principal.has_role(Role.member, Role.co_chair)
    )


# --- loading for a read or a change -----------------------------------------------------------


async def visible(
    session: AsyncSession, activity_id: str, principal: Principal, *, lock: bool
) -> Activity:
    """The activity, or 404 alike for a missing one and one the caller may not see."""
    activity = (
        await locked(session, activity_id) if lock else await session.get(Activity, activity_id)
    )
    if activity is None:
        raise not_found("activity")
    if activity.deleted and not may_read(
        principal, activity, staff=await sees_every_member(session, principal)
    ):
        raise not_found("activity")
    return activity


async def writable(session: AsyncSession, activity_id: str, principal: Principal) -> Activity:
    activity = await visible(session, activity_id, principal, lock=True)
    if not may_write(principal, activity):
        raise forbidden(
            f"Only the lead member ({activity.lead_member}) or an administrator may change "
            "this activity."
        )
    return activity


async def locked(session: AsyncSession, activity_id: str) -> Activity | None:
    # The row lock queues concurrent writers on PostgreSQL, so one If-Match wins and
    # the rest see the new version; SQLite serialises writers on its one connection.
    return await session.get(Activity, activity_id, with_for_update=True, populate_existing=True)
