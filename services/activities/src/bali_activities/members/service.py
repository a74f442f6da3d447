"""Use cases of the member directory; each change stages its `member.*` event and audit row."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from importlib.resources import files
from typing import Any

from bali_common.auth import Principal, Role
from bali_common.db import SessionFactory, as_utc, transaction, utcnow
from bali_common.events.members import (
    FocalPointData,
    FocalPointRole,
    MemberKind,
    MemberRegistered,
    MemberUpdated,
)
from bali_common.http.audit import record_audit
from bali_common.http.concurrency import check_version
from bali_common.http.pagination import PageRequest, keyset_page
from bali_common.messaging.outbox import stage_event
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_activities.members.models import (
    FocalPoint,
    FocalPointCreate,
    FocalPointPublic,
    FocalPointUpdate,
    Member,
    MemberCreate,
    MemberPublic,
    MembersPublic,
    MemberUpdate,
)
from bali_activities.refusals import conflict, not_found, refusals_audited

log = logging.getLogger(__name__)

MAX_FOCAL_POINTS = 20
#: Who seeded the reference membership, as the audit trail and the events name it.
SEED_PRINCIPAL = Principal(subject="system:reference-data", roles=frozenset())


# --- reference data ---------------------------------------------------------------------------


class ReferenceFocalPoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    focal_point_id: str
    name: str
    email: str
    role: FocalPointRole


class ReferenceMember(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_id: str
    name: str
    kind: MemberKind
    is_co_chair: bool
    focal_points: list[ReferenceFocalPoint] = Field(min_length=1)


class ReferenceDirectory(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str
    as_of: str
    members: list[ReferenceMember]


def load_reference_members() -> list[ReferenceMember]:
    """The Bali Process membership shipped with the service (`reference/members.json`)."""
    raw = files("bali_activities").joinpath("reference/members.json").read_text(encoding="utf-8")
    return ReferenceDirectory.model_validate(json.loads(raw)).members


async def seed_reference_members(*, sessions: SessionFactory) -> int:
    """Load the reference membership into an empty directory; returns how many were added.

    Each member is announced with `member.registered` so that the services that
    consume the directory learn it from the stream, like any later member.
    """
    try:
        async with transaction(sessions) as session:
            if await _directory_has_members(session):
                return 0
            now = utcnow()
            reference = load_reference_members()
            members = [
                Member(
                    member_id=entry.member_id,
                    name=entry.name,
                    kind=entry.kind.value,
                    is_co_chair=entry.is_co_chair,
                    created_at=now,
                    updated_at=now,
                )
                for entry in reference
            ]
            session.add_all(members)
            # Focal points reference their member: the members go in first.
            await session.flush()
            for entry, member in zip(reference, members, strict=True):
                contacts = [
                    FocalPoint(
                        focal_point_id=point.focal_point_id,
                        member_id=entry.member_id,
                        position=position,
                        name=point.name,
                        email=point.email,
                        role=point.role.value,
                    )
                    for position, point in enumerate(entry.focal_points)
                ]
                session.add_all(contacts)
                stage_event(
                    session,
                    MemberRegistered(**_snapshot(member, contacts)),
                    subject=member.member_id,
                )
            record_audit(
                session,
                principal=SEED_PRINCIPAL,
                action="member.seed",
                resource_type="member",
                resource_id=None,
                details={"members": len(reference)},
            )
            return len(reference)
    except IntegrityError:
        async with sessions() as session:
            if not await _directory_has_members(session):
                raise
        # Another replica seeded the directory at the same moment; its rows stand.
        log.info("reference members were seeded concurrently by another instance")
        return 0


async def _directory_has_members(session: AsyncSession) -> bool:
    return (await session.exec(select(Member.member_id).limit(1))).first() is not None


# --- reads ------------------------------------------------------------------------------------


def may_see_contacts(principal: Principal, member_id: str) -> bool:
    """Contacts are personal data: shown to staff who act on alerts and to the member itself."""
    return principal.allows(Role.ops, Role.co_chair) or principal.member_id == member_id


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
    contacts = await _focal_points_of(session, [m.member_id for m in listed.rows])
    return MembersPublic(
        items=[
            member_public(m, contacts.get(m.member_id, []), principal=principal)
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
    contacts = await _focal_points_of(session, [member_id])
    return member_public(member, contacts.get(member_id, []), principal=principal)


async def member_states(session: AsyncSession, member_ids: Iterable[str]) -> dict[str, bool]:
    """Which of `member_ids` exist, each mapped to whether it is active."""
    wanted = sorted(set(member_ids))
    if not wanted:
        return {}
    rows = await session.exec(
        select(Member.member_id, Member.active).where(col(Member.member_id).in_(wanted))
    )
    return dict(rows.all())


# --- changes ----------------------------------------------------------------------------------


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
            session, MemberRegistered(**_snapshot(member, contacts)), subject=member.member_id
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
    return member_public(member, contacts, principal=principal)


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
    return member_public(member, contacts, principal=principal)


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
    return member_public(member, contacts, principal=principal), contact.focal_point_id


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
    return member_public(member, contacts, principal=principal)


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
    return member_public(member, contacts, principal=principal)


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
    return member, (await _focal_points_of(session, [member_id])).get(member_id, [])


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
    stage_event(session, MemberUpdated(**_snapshot(member, contacts)), subject=member.member_id)
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


async def _focal_points_of(
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


def _member_fields(member: Member) -> dict[str, Any]:
    """What the public representation and the `member.*` events both say of a member."""
    return {
        "member_id": member.member_id,
        "name": member.name,
        "kind": MemberKind(member.kind),
        "is_co_chair": member.is_co_chair,
        "active": member.active,
        "version": member.version,
    }


def _contact_fields(contact: FocalPoint) -> dict[str, Any]:
    return {
        "focal_point_id": contact.focal_point_id,
        "name": contact.name,
        "email": contact.email,
        "role": FocalPointRole(contact.role),
        "webhook_url": contact.webhook_url,
        "active": contact.active,
    }


def _snapshot(member: Member, contacts: Sequence[FocalPoint]) -> dict[str, Any]:
    return {
        **_member_fields(member),
        "focal_points": [FocalPointData(**_contact_fields(c)) for c in contacts],
    }


def member_public(
    member: Member, contacts: Sequence[FocalPoint], *, principal: Principal
) -> MemberPublic:
    return MemberPublic(
        **_member_fields(member),
        focal_points=[FocalPointPublic(**_contact_fields(c)) for c in contacts]
        if may_see_contacts(principal, member.member_id)
        else None,
        created_at=as_utc(member.created_at),
        updated_at=as_utc(member.updated_at),
    )
