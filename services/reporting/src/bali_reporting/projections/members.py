"""Member directory projection: names for the reports and which members are co-chairs."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Any

from bali_common.db import table_of
from bali_common.events.members import MemberRegistered, MemberSnapshot, MemberUpdated
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_reporting.projections.base import Applied, Projection, head_fold


class DirectoryMember(SQLModel, table=True):
    """The newest snapshot of each member; an older one never overwrites it."""

    __tablename__ = "reporting_members"

    member_id: str = Field(primary_key=True, max_length=50)
    version: int
    name: str = Field(max_length=300)
    kind: str = Field(max_length=50)
    is_co_chair: bool = False
    active: bool = True


def snapshots(batch: Sequence[Applied]) -> Iterator[tuple[str, int, MemberSnapshot]]:
    for _, payload in batch:
        if isinstance(payload, MemberSnapshot):
            yield payload.member_id, payload.version, payload


def row(snapshot: MemberSnapshot) -> dict[str, Any]:
    return {
        "name": snapshot.name,
        "kind": snapshot.kind.value,
        "is_co_chair": snapshot.is_co_chair,
        "active": snapshot.active,
    }


apply, fold = head_fold(snapshots, row, table_of(DirectoryMember))


PROJECTION = Projection(
    name="members",
    models=(DirectoryMember,),
    takes=(MemberRegistered, MemberUpdated),
    apply=apply,
    fold=fold,
)


async def co_chair_members(session: AsyncSession) -> frozenset[str]:
    """The member ids the directory lists as active co-chairs (for `alert_viewer`)."""
    found = await session.exec(
        select(DirectoryMember.member_id).where(
            col(DirectoryMember.is_co_chair).is_(True), col(DirectoryMember.active).is_(True)
        )
    )
    return frozenset(found.all())


async def member_names(session: AsyncSession, member_ids: Collection[str]) -> dict[str, str]:
    """Names of the members the directory knows; a member it does not know yet is left out
    (its events may still be on their way), and the reports show the bare id."""
    if not member_ids:
        return {}
    found = await session.exec(
        select(DirectoryMember.member_id, DirectoryMember.name).where(
            col(DirectoryMember.member_id).in_(sorted(member_ids))
        )
    )
    return dict(found.all())
