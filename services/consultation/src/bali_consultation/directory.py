"""The member directory as this service knows it, projected from the member.* events."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import sqlmodel
from bali_common.events.members import MemberSnapshot
from sqlalchemy import JSON, Column
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_consultation.settings import ConsultationSettings

log = logging.getLogger(__name__)


class DirectoryMember(SQLModel, table=True):
    """Projection of the member directory (member.* events of the activities service)."""

    __tablename__ = "consultation_members"

    member_id: str = sqlmodel.Field(primary_key=True, max_length=50)
    name: str = sqlmodel.Field(max_length=300)
    kind: str = sqlmodel.Field(max_length=50)
    is_co_chair: bool = False
    active: bool = True
    focal_points: list[dict[str, Any]] = sqlmodel.Field(
        default_factory=list, sa_column=Column(JSON)
    )
    version: int


async def upsert(*, session: AsyncSession, snapshot: MemberSnapshot) -> bool:
    """Apply a member snapshot unless we already hold that version or a newer one (no commit)."""
    member = await session.get(DirectoryMember, snapshot.member_id, with_for_update=True)
    if member is not None and member.version >= snapshot.version:
        return False
    member = member or DirectoryMember(
        member_id=snapshot.member_id,
        name=snapshot.name,
        kind=snapshot.kind.value,
        version=snapshot.version,
    )
    member.name = snapshot.name
    member.kind = snapshot.kind.value
    member.is_co_chair = snapshot.is_co_chair
    member.active = snapshot.active
    member.focal_points = [fp.model_dump(mode="json") for fp in snapshot.focal_points]
    member.version = snapshot.version
    session.add(member)
    return True


async def members(*, session: AsyncSession) -> list[DirectoryMember]:
    return list((await session.exec(select(DirectoryMember))).all())


async def name_of(*, session: AsyncSession, member_id: str) -> str | None:
    member = await session.get(DirectoryMember, member_id)
    return None if member is None else member.name


async def co_chair_ids(*, session: AsyncSession, settings: ConsultationSettings) -> list[str]:
    """The co-chairs the directory names; the configured ones until the directory has any."""
    rows = await session.exec(
        select(DirectoryMember.member_id).where(
            col(DirectoryMember.is_co_chair).is_(True), col(DirectoryMember.active).is_(True)
        )
    )
    return sorted(rows.all()) or list(settings.co_chair_members)


async def warn_of_unknown(*, session: AsyncSession, member_ids: Sequence[str]) -> None:
    """An affected member the directory does not know (yet) is kept, never refused.

    The directory here is a projection that can lag behind the activities service
    (a member added minutes ago, or a service that has just started): refusing
    would block an emergency alert. Co-chairs receive every alert and see the id.
    """
    if not member_ids:
        return
    known = set((await session.exec(select(DirectoryMember.member_id))).all())
    unknown = [member for member in member_ids if member not in known]
    if known and unknown:
        log.warning("affected members not (yet) in the directory: %s", ", ".join(unknown))
