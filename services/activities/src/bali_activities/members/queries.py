"""Reads of the member directory."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bali_common.auth import Principal, Role
from bali_common.db import execute_core
from bali_common.events.members import MemberKind
from bali_common.http.pagination import PageRequest, keyset_page
from bali_common.visibility import sees_every_member as _sees_every_member
from sqlalchemy import bindparam, func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_activities.members.models import FocalPoint, Member, MemberPublic, MembersPublic
from bali_activities.members.representation import member_public
from bali_activities.refusals import not_found


async def sees_every_member(session: AsyncSession, principal: Principal) -> bool:
    """The platform's rule (`bali_common.visibility.sees_every_member`) against this
    service's directory; the directory is read only for a `co_chair` role."""
    if principal.allows(Role.ops):
        return True
    if not principal.has_role(Role.co_chair):
        return False
    co_chairs = await session.exec(
        select(Member.member_id).where(col(Member.is_co_chair).is_(True), col(Member.active))
    )
    return _sees_every_member(principal, set(co_chairs.all()))


async def list_members(
    *,
    session: AsyncSession,
    principal: Principal,
    page: PageRequest,
    kind: MemberKind | None = None,
    is_co_chair: bool | None = None,
    active: bool | None = None,
    q: str | None = None,
) -> MembersPublic:
    query = select(Member)
    if kind is not None:
        query = query.where(Member.kind == kind.value)
    if is_co_chair is not None:
        query = query.where(Member.is_co_chair == is_co_chair)
    if active is not None:
        query = query.where(Member.active == active)
    if q:
        needle = q.lower()
        query = query.where(
            or_(
                func.lower(col(Member.name)).contains(needle, autoescape=True),
                func.lower(col(Member.member_id)).contains(needle, autoescape=True),
            )
        )
    listed = await keyset_page(session, query, page=page, order_by=[col(Member.member_id)])
    contacts = await focal_points_of(session, [m.member_id for m in listed.rows])
    staff = await sees_every_member(session, principal)
    return MembersPublic(
        items=[
            member_public(m, contacts.get(m.member_id, []), principal=principal, staff=staff)
            for m in listed.rows
        ],
        next_cursor=listed.next_cursor,
    )


async def get_member(
    *, session: AsyncSession, member_id: str, principal: Principal
) -> MemberPublic:
    member = await session.get(Member, member_id)
    if member is None:
        raise not_found("member")
    contacts = await focal_points_of(session, [member_id])
    staff = await sees_every_member(session, principal)
    return member_public(member, contacts.get(member_id, []), principal=principal, staff=staff)


async def member_states(session: AsyncSession, member_ids: Iterable[str]) -> dict[str, bool]:
    """Which of `member_ids` exist, each mapped to whether it is active."""
    wanted = sorted(set(member_ids))
    if not wanted:
        return {}
    rows = await execute_core(session, _MEMBER_STATES, {"member_ids": wanted})
    return {row.member_id: row.active for row in rows}


#: Asked on every activity written: built once, so it is compiled once (see `execute_core`).
_MEMBER_STATES = select(Member.member_id, Member.active).where(
    col(Member.member_id).in_(bindparam("member_ids", expanding=True))
)


async def focal_points_of(
    session: AsyncSession, member_ids: Sequence[str]
) -> dict[str, list[FocalPoint]]:
    if not member_ids:
        return {}
    rows = await session.exec(
        select(FocalPoint)
        .where(col(FocalPoint.member_id).in_(member_ids))
        .order_by(col(FocalPoint.member_id), col(FocalPoint.position))
    )
    grouped: dict[str, list[FocalPoint]] = {}
    for row in rows.all():
        grouped.setdefault(row.member_id, []).append(row)
    return grouped
