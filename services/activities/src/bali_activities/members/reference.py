"""The reference membership shipped with the service, and seeding an empty directory with it."""

from __future__ import annotations

import json
import logging
from importlib.resources import files

from bali_common.auth import Principal
from bali_common.db import SessionFactory, transaction, utcnow
from bali_common.events.members import FocalPointRole, MemberKind, MemberRegistered
from bali_common.http.audit import record_audit
from bali_common.messaging.outbox import stage_event
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_activities.members.models import FocalPoint, Member
from bali_activities.members.representation import snapshot

log = logging.getLogger(__name__)


#: Who seeded the reference membership, as the audit trail and the events name it.
SEED_PRINCIPAL = Principal(subject="system:reference-data", roles=frozenset())


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
                    MemberRegistered(**snapshot(member, contacts)),
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
