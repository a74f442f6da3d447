"""Strategy coverage: the 25 items x members (lead or participant) x activity status, per year.

Each activity counts once per year its period overlaps, per item it serves, for the
item as a whole (member `*`) and for each member involved. Deleted activities count
nowhere; a restored one counts again. An item is covered in a year when at least one
planned, ongoing or completed activity serves it; the others stand out as uncovered.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any, Literal, cast

from bali_common.db import table_of
from bali_common.events.activities import (
    ActivityEvent,
    ActivityStatus,
    ActivitySummary,
    ParticipantRole,
)
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, Column, Index, select
from sqlmodel import Field as TableField
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_reporting.filters import STRATEGY, ReportFilters
from bali_reporting.projections.base import (
    Applied,
    Contribution,
    Key,
    Projection,
    Tally,
    add_share,
    contribution_fold,
    fetch,
)
from bali_reporting.projections.dating import years_spanned
from bali_reporting.projections.members import member_names

ANY_MEMBER = "*"
ANY_ROLE = "any"
#: Statuses of an activity that covers its items; cancelled and suspended ones do not.
COVERING = frozenset({ActivityStatus.planned, ActivityStatus.ongoing, ActivityStatus.completed})
Involvement = Literal["lead", "participant"]


class CoverageHead(SQLModel, table=True):
    """Newest version of each activity and its share of the coverage tallies."""

    __tablename__ = "coverage_heads"

    activity_id: str = TableField(primary_key=True, max_length=64)
    version: int
    contribution: dict[str, Any] = TableField(sa_column=Column(JSON, nullable=False))


class CoverageTally(SQLModel, table=True):
    """Activities per year, item, member, involvement and status (member `*`: any)."""

    __tablename__ = "coverage_tallies"
    __table_args__ = (Index("ix_coverage_tallies_n", "n"),)

    year: int = TableField(primary_key=True)
    item_number: int = TableField(primary_key=True)
    member_id: str = TableField(primary_key=True, max_length=50)
    role: str = TableField(primary_key=True, max_length=20)
    status: str = TableField(primary_key=True, max_length=20)
    n: int


TALLIES = {
    "coverage": Tally(
        table_of(CoverageTally),
        keys=("year", "item_number", "member_id", "role", "status"),
        measures=("n",),
    )
}


def involvement(activity: ActivitySummary) -> list[tuple[str, Involvement]]:
    """Each member involved once: the lead as lead, every other role as participant."""
    involved: dict[str, Involvement] = {activity.lead_member: "lead"}
    for participant in activity.participants:
        if participant.member_id not in involved:
            role: Involvement = (
                "lead" if participant.role is ParticipantRole.lead else "participant"
            )
            involved[participant.member_id] = role
    for member_id in activity.participating_members:
        involved.setdefault(member_id, "participant")
    return sorted(involved.items())


def contribution(activity: ActivitySummary) -> Contribution:
    shares: dict[Key, tuple[int, ...]] = {}
    if activity.deleted:
        return {"coverage": shares}
    status = activity.status.value
    members = involvement(activity)
    for year in years_spanned(activity):
        for item in set(activity.item_numbers):
            add_share(shares, (year, item, ANY_MEMBER, ANY_ROLE, status), (1,))
            for member_id, role in members:
                add_share(shares, (year, item, member_id, role, status), (1,))
    return {"coverage": shares}


def snapshots(batch: Sequence[Applied]) -> Iterator[tuple[str, int, ActivitySummary]]:
    for _, payload in batch:
        if isinstance(payload, ActivityEvent):
            yield payload.activity.activity_id, payload.activity.version, payload.activity


apply, fold = contribution_fold(snapshots, contribution, table_of(CoverageHead), TALLIES)


PROJECTION = Projection(
    name="coverage",
    models=(CoverageHead, CoverageTally),
    takes=(ActivityEvent,),
    apply=apply,
    fold=fold,
)


# --- query --------------------------------------------------------------------------------------


class MemberCoverage(BaseModel):
    member_id: str
    role: Involvement
    activities: int
    by_status: dict[ActivityStatus, int]


class ItemCoverage(BaseModel):
    item: int
    area: int
    text: str
    activities: int = Field(description="Activities serving the item in the year")
    by_status: dict[ActivityStatus, int]
    covered: bool = Field(description="A planned, ongoing or completed activity serves it")
    members: list[MemberCoverage]


class CoverageReport(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "strategy_id": "adelaide-2023",
                    "year": 2025,
                    "items": [
                        {
                            "item": 12,
                            "area": 4,
                            "text": "Strengthen cooperation on the return and reintegration...",
                            "activities": 3,
                            "by_status": {"completed": 2, "ongoing": 1},
                            "covered": True,
                            "members": [
                                {
                                    "member_id": "TH",
                                    "role": "lead",
                                    "activities": 2,
                                    "by_status": {"completed": 2},
                                }
                            ],
                        }
                    ],
                    "uncovered_items": [7, 19],
                    "member_names": {"TH": "Thailand"},
                }
            ]
        }
    )

    strategy_id: str
    year: int
    items: list[ItemCoverage]
    uncovered_items: list[int] = Field(description="Items no activity covers in the year")
    member_names: dict[str, str] = Field(
        description="Names of the members listed, from the member directory (a member it does "
        "not know yet is missing)"
    )


async def coverage_report(session: AsyncSession, filters: ReportFilters) -> CoverageReport:
    """The coverage matrix of `filters.year` (set it: the routes default it to this year)."""
    if filters.year is None:
        raise ValueError("coverage is per year: set filters.year")
    scope = filters.items_in_scope()
    table = table_of(CoverageTally)
    query = select(table.c.item_number, table.c.member_id, table.c.role, table.c.status, table.c.n)
    query = query.where(table.c.year == filters.year)
    if scope is not None:
        query = query.where(table.c.item_number.in_(scope))
    if filters.member is not None:
        query = query.where(table.c.member_id.in_([ANY_MEMBER, filters.member]))
    totals: dict[int, dict[ActivityStatus, int]] = defaultdict(dict)
    cells: dict[int, dict[tuple[str, str], dict[ActivityStatus, int]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for item, member_id, role, status, n in await fetch(session, query):
        if member_id == ANY_MEMBER:
            totals[item][ActivityStatus(status)] = n
        else:
            cells[item][(member_id, role)][ActivityStatus(status)] = n
    names = await member_names(session, {m for item in cells.values() for m, _ in item})
    items = []
    for strategy_item in STRATEGY.items:
        if scope is not None and strategy_item.number not in scope:
            continue
        by_status = _shown(totals[strategy_item.number], filters)
        members = [
            MemberCoverage(
                member_id=member_id,
                role=cast(Involvement, role),
                activities=sum(shown.values()),
                by_status=shown,
            )
            for (member_id, role), counts in sorted(cells[strategy_item.number].items())
            if (shown := _shown(counts, filters))
        ]
        items.append(
            ItemCoverage(
                item=strategy_item.number,
                area=strategy_item.area_number,
                text=strategy_item.text,
                activities=sum(by_status.values()),
                by_status=by_status,
                covered=any(totals[strategy_item.number].get(s) for s in COVERING),
                members=members,
            )
        )
    listed = {member.member_id for item in items for member in item.members}
    return CoverageReport(
        strategy_id=STRATEGY.id,
        year=filters.year,
        items=items,
        uncovered_items=[item.item for item in items if not item.covered],
        member_names={m: names[m] for m in sorted(listed) if m in names},
    )


def _shown(counts: dict[ActivityStatus, int], filters: ReportFilters) -> dict[ActivityStatus, int]:
    if filters.activity_status is None:
        return dict(sorted(counts.items()))
    status = filters.activity_status
    return {status: counts[status]} if counts.get(status) else {}


COLUMNS = (
    "year",
    "item",
    "area",
    "item_text",
    "member_id",
    "member_name",
    "role",
    "status",
    "activities",
    "covered",
)


def rows(report: CoverageReport) -> Iterator[list[Any]]:
    """One row per item, member, role and status; an item nobody serves gets one empty row."""
    for item in report.items:
        if not item.members:
            yield [
                report.year,
                item.item,
                item.area,
                item.text,
                None,
                None,
                None,
                None,
                0,
                item.covered,
            ]
        for member in item.members:
            for status, n in member.by_status.items():
                yield [
                    report.year,
                    item.item,
                    item.area,
                    item.text,
                    member.member_id,
                    report.member_names.get(member.member_id),
                    member.role,
                    status.value,
                    n,
                    item.covered,
                ]
