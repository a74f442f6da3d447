"""Use cases that change the member directory; each stages its `member.*` event and audit row."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager

from bali_common.auth import Principal
from bali_common.db import utcnow
from bali_common.events.members import MemberRegistered, MemberUpdated
from bali_common.http.audit import record_audit
from bali_common.http.concurrency import check_version
from bali_common.messaging.outbox import stage_event
from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_activities.members.models import (
    FocalPoint,
    FocalPointCreate,
    FocalPointUpdate,
    Member,
    MemberCreate,
    MemberPublic,
    MemberUpdate,
)
from bali_activities.members.queries import focal_points_of, sees_every_member
from bali_activities.members.representation import member_public, snapshot
from bali_activities.refusals import conflict, not_found, refusals_audited

MAX_FOCAL_POINTS = 20


async def register_member(
    *,
    session: AsyncSession,
    member_in: MemberCreate,
    principal: Principal,
    source: str | None,
) -> MemberPublic:
    async with _refusals(session, "member.register", member_in.member_id, principal, source):
        if await session.get(Member, member_in.member_id) is not None:
            raise conflict(f"Member {member_in.member_id} already exists.", slug="member-exists")
        now = utcnow()
        member = Member(
            member_id=member_in.member_id,
            name=member_in.name,
            kind=member_in.kind.value,
            is_co_chair=member_in.is_co_chair,
            created_at=now,
            updated_at=now,
        )
        session.add(member)
        await session.flush()
        contacts = [
            _new_focal_point(member.member_id, position, point)
            for position, point in enumerate(member_in.focal_points)
        ]
        session.add_all(contacts)
        stage_event(
            session, MemberRegistered(**snapshot(member, contacts)), subject=member.member_id
        )
        record_audit(
            session,
            principal=principal,
            action="member.register",
            resource_type="member",
            resource_id=member.member_id,
            source=source,
            details={"version": 1},
        )
        await session.commit()
    return await _answer(session, member, contacts, principal)


async def update_member(
    *,
    session: AsyncSession,
    member_id: str,
    changes: MemberUpdate,
    if_match: str | None,
    principal: Principal,
    source: str | None,
) -> MemberPublic:
    async with _refusals(session, "member.update", member_id, principal, source):
        member, contacts = await _locked_member(session, member_id)
        check_version(member.version, if_match)
        changed = _apply(changes, to=member)
        if changed:
            await _announce_change(
                session, member, contacts, principal=principal, source=source, what=changed
            )
    return await _answer(session, member, contacts, principal)


async def add_focal_point(
    *,
    session: AsyncSession,
    member_id: str,
    focal_point_in: FocalPointCreate,
    if_match: str | None,
    principal: Principal,
    source: str | None,
) -> tuple[MemberPublic, str]:
    """Add a contact; `If-Match` is optional here, since adding cannot overwrite anything."""
    async with _refusals(session, "member.focal_point.add", member_id, principal, source):
        member, contacts = await _locked_member(session, member_id)
        if if_match is not None:
            check_version(member.version, if_match)
        if len(contacts) >= MAX_FOCAL_POINTS:
            raise conflict(
                f"A member has at most {MAX_FOCAL_POINTS} focal points; remove one first.",
                slug="too-many-focal-points",
            )
        position = max((c.position for c in contacts), default=-1) + 1
        contact = _new_focal_point(member_id, position, focal_point_in)
        session.add(contact)
        contacts.append(contact)
        await _announce_change(
            session,
            member,
            contacts,
            principal=principal,
            source=source,
            what=[f"focal_points.{contact.focal_point_id}"],
        )
    return await _answer(session, member, contacts, principal), contact.focal_point_id


async def update_focal_point(
    *,
    session: AsyncSession,
    member_id: str,
    focal_point_id: str,
    changes: FocalPointUpdate,
    if_match: str | None,
    principal: Principal,
    source: str | None,
) -> MemberPublic:
    async with _refusals(session, "member.focal_point.update", member_id, principal, source):
        member, contacts = await _locked_member(session, member_id)
        contact = _contact(contacts, focal_point_id)
        check_version(member.version, if_match)
        changed = _apply(changes, to=contact)
        if changed:
            session.add(contact)
            await _announce_change(
                session,
                member,
                contacts,
                principal=principal,
                source=source,
                what=[f"focal_points.{focal_point_id}.{name}" for name in changed],
            )
    return await _answer(session, member, contacts, principal)


async def remove_focal_point(
    *,
    session: AsyncSession,
    member_id: str,
    focal_point_id: str,
    if_match: str | None,
    principal: Principal,
    source: str | None,
) -> MemberPublic:
    """Delete a contact outright: it is personal data, kept only in the audit of who removed it."""
    async with _refusals(session, "member.focal_point.remove", member_id, principal, source):
        member, contacts = await _locked_member(session, member_id)
        contact = _contact(contacts, focal_point_id)
        if if_match is not None:
            check_version(member.version, if_match)
        await session.delete(contact)
        contacts.remove(contact)
        await _announce_change(
            session,
            member,
            contacts,
            principal=principal,
            source=source,
            what=[f"focal_points.{focal_point_id}"],
        )
    return await _answer(session, member, contacts, principal)


# --- helpers ----------------------------------------------------------------------------------


def _refusals(
    session: AsyncSession,
    action: str,
    member_id: str,
    principal: Principal,
    source: str | None,
) -> AbstractAsyncContextManager[None]:
    """A refused change of a member is audited against that member."""
    return refusals_audited(
        session,
        principal=principal,
        action=action,
        resource_type="member",
        resource_id=member_id,
        source=source,
    )


async def _locked_member(session: AsyncSession, member_id: str) -> tuple[Member, list[FocalPoint]]:
    """The member, locked for a change, with its contacts."""
    # The row lock makes concurrent changes queue on PostgreSQL, so If-Match has one winner.
    member = await session.get(Member, member_id, with_for_update=True, populate_existing=True)
    if member is None:
        raise not_found("member")
    return member, (await focal_points_of(session, [member_id])).get(member_id, [])


def _contact(contacts: Sequence[FocalPoint], focal_point_id: str) -> FocalPoint:
    contact = next((c for c in contacts if c.focal_point_id == focal_point_id), None)
    if contact is None:
        raise not_found("focal point")
    return contact


def _apply(changes: BaseModel, *, to: Member | FocalPoint) -> list[str]:
    """Set the fields sent that differ from what is stored; the names of those changed."""
    changed = [
        name
        for name, value in changes.model_dump(exclude_unset=True).items()
        if _stored(value) != getattr(to, name)
    ]
    for name in changed:
        setattr(to, name, _stored(getattr(changes, name)))
    return changed


async def _announce_change(
    session: AsyncSession,
    member: Member,
    contacts: Sequence[FocalPoint],
    *,
    principal: Principal,
    source: str | None,
    what: list[str],
) -> None:
    member.version += 1
    member.updated_at = utcnow()
    session.add(member)
    stage_event(session, MemberUpdated(**snapshot(member, contacts)), subject=member.member_id)
    record_audit(
        session,
        principal=principal,
        action="member.update",
        resource_type="member",
        resource_id=member.member_id,
        source=source,
        details={"version": member.version, "changed_fields": what},
    )
    await session.commit()


def _new_focal_point(member_id: str, position: int, point: FocalPointCreate) -> FocalPoint:
    return FocalPoint(
        focal_point_id=uuid.uuid4().hex,
        member_id=member_id,
        position=position,
        name=point.name,
        email=point.email,
        role=point.role.value,
        webhook_url=point.webhook_url,
        active=point.active,
    )


def _stored(value: object) -> object:
    """Enums are stored as their text."""
    return getattr(value, "value", value)


async def _answer(
    session: AsyncSession, member: Member, contacts: Sequence[FocalPoint], principal: Principal
) -> MemberPublic:
    staff = await sees_every_member(session, principal)
    return member_public(member, contacts, principal=principal, staff=staff)
