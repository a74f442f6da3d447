"""The member directory as the activities service publishes it: members, focal points, co-chairs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bali_common.db import utcnow
from bali_common.events.members import FocalPointRole, MemberSnapshot
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_notifications.fields import json_list, timestamp_now


class MemberEntry(SQLModel, table=True):
    """The member directory as the activities service last published it (upserted by version)."""

    __tablename__ = "member_directory"

    member_id: str = Field(primary_key=True, max_length=100)
    name: str = Field(max_length=300)
    kind: str = Field(max_length=50)
    is_co_chair: bool = False
    active: bool = True
    version: int
    focal_points: list[dict[str, Any]] = json_list()
    updated_at: datetime = timestamp_now()


async def apply_snapshot(*, session: AsyncSession, snapshot: MemberSnapshot) -> bool:
    """Upsert the member; an older or repeated version (reordering, redelivery) changes nothing."""
    entry = await session.get(MemberEntry, snapshot.member_id, with_for_update=True)
    if entry is not None and entry.version >= snapshot.version:
        return False
    entry = entry or MemberEntry(
        member_id=snapshot.member_id, name=snapshot.name, kind=snapshot.kind, version=0
    )
    entry.name = snapshot.name
    entry.kind = snapshot.kind.value
    entry.is_co_chair = snapshot.is_co_chair
    entry.active = snapshot.active
    entry.version = snapshot.version
    entry.focal_points = [point.model_dump(mode="json") for point in snapshot.focal_points]
    entry.updated_at = utcnow()
    session.add(entry)
    return True


async def entries(*, session: AsyncSession) -> list[MemberEntry]:
    """The whole directory, inactive members included."""
    return list((await session.exec(select(MemberEntry))).all())


async def co_chair_ids(*, session: AsyncSession) -> list[str]:
    """The members the directory lists as active co-chairs: the visibility rule's co-chairs."""
    rows = await session.exec(
        select(MemberEntry.member_id).where(
            col(MemberEntry.is_co_chair).is_(True), col(MemberEntry.active).is_(True)
        )
    )
    return sorted(rows.all())


def co_chairs(members: Sequence[MemberEntry]) -> list[MemberEntry]:
    """The active co-chairs, in directory order."""
    return [member for member in members if member.is_co_chair and member.active]


def focal_point_emails(member: MemberEntry, role: FocalPointRole) -> list[str]:
    """The addresses of the member's active focal points in `role`, lower-cased."""
    return [
        str(point["email"]).lower()
        for point in member.focal_points
        if point.get("active", True) and point.get("role", FocalPointRole.focal_point) == role
    ]
