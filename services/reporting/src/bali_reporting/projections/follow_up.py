"""Alert follow-up: activities whose `related_alert_id` names an alert, shown with the alert.

Item 11 (the Consultation Mechanism) leads to outreach and return work (items 12-13):
this report joins the two streams at query time, so an activity naming an alert that
has not arrived yet simply shows no alert until it does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import Any

from bali_common.db import table_of
from bali_common.events.activities import (
    ActivityEvent,
    ActivityStatus,
    ActivitySummary,
    ActivityType,
)
from bali_common.http.pagination import PageRequest, keyset_page
from bali_common.tabular import list_cell
from bali_common.visibility import AlertViewer
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Index
from sqlalchemy import select as select_columns
from sqlmodel import Field as TableField
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_reporting.filters import ReportFilters
from bali_reporting.projections.alerts import (
    AlertBoardEntry,
    AlertBoardRow,
    audience_of,
    board_row,
    visible_alert_ids,
)
from bali_reporting.projections.base import Applied, Projection, head_fold
from bali_reporting.projections.coverage import involvement
from bali_reporting.projections.dating import day_key, starts_on
from bali_reporting.projections.members import member_names


class FollowUpActivity(SQLModel, table=True):
    """Every activity's newest version; those naming an alert are the report."""

    __tablename__ = "follow_up_activities"
    __table_args__ = (
        Index("ix_follow_up_alert", "alert_id"),
        Index("ix_follow_up_order", "starts_on", "activity_id"),
    )

    activity_id: str = TableField(primary_key=True, max_length=64)
    version: int
    alert_id: str | None = TableField(default=None, max_length=100)
    deleted: bool = False
    title: str = TableField(max_length=300)
    status: str = TableField(max_length=20)
    type: str = TableField(max_length=40)
    lead_member: str = TableField(max_length=50)
    items_key: str = TableField(max_length=200, description="';3;12;': items for LIKE filters")
    members_key: str = TableField(max_length=3000, description="';AU;TH;': members involved")
    starts_on: int = TableField(description="yyyymmdd, 0 when undated")


def _row(activity: ActivitySummary) -> dict[str, Any]:
    return {
        "version": activity.version,
        "alert_id": activity.related_alert_id,
        "deleted": activity.deleted,
        "title": activity.title,
        "status": activity.status.value,
        "type": activity.type.value,
        "lead_member": activity.lead_member,
        "items_key": f";{';'.join(str(n) for n in sorted(set(activity.item_numbers)))};",
        "members_key": f";{';'.join(m for m, _ in involvement(activity))};",
        "starts_on": day_key(starts_on(activity)),
    }


def snapshots(batch: Sequence[Applied]) -> Iterator[tuple[str, int, ActivitySummary]]:
    for _, payload in batch:
        if isinstance(payload, ActivityEvent):
            yield payload.activity.activity_id, payload.activity.version, payload.activity


apply, fold = head_fold(snapshots, _row, table_of(FollowUpActivity))


PROJECTION = Projection(
    name="follow_up",
    models=(FollowUpActivity,),
    takes=(ActivityEvent,),
    apply=apply,
    fold=fold,
)


# --- query --------------------------------------------------------------------------------------


class FollowUpActivityPublic(BaseModel):
    activity_id: str
    version: int
    title: str
    status: ActivityStatus
    type: ActivityType
    items: list[int]
    lead_member: str
    members: list[str]
    starts_on: date | None


class FollowUpRow(BaseModel):
    activity: FollowUpActivityPublic
    alert_id: str
    alert: AlertBoardRow | None = Field(description="Null until the alert reaches reporting")


class FollowUpReport(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {
                            "activity": {
                                "activity_id": "7d0c1a52-55a1-4c55-9a1e-0d6f1c2b3a44",
                                "version": 2,
                                "title": "Return assistance after the Rote Island rescue",
                                "status": "ongoing",
                                "type": "joint_operation",
                                "items": [12, 13],
                                "lead_member": "ID",
                                "members": ["AU", "ID", "IOM"],
                                "starts_on": "2025-12-01",
                            },
                            "alert_id": "0b6f3f8e-2f7c-4a38-9a43-6c1f1f1f9a01",
                            "alert": None,
                        }
                    ],
                    "next_cursor": None,
                }
            ]
        }
    )

    items: list[FollowUpRow]
    next_cursor: str | None = None


async def follow_up_report(
    session: AsyncSession,
    filters: ReportFilters,
    *,
    viewer: AlertViewer,
    now: datetime,
    page: PageRequest,
) -> FollowUpReport:
    """Newest activities first. Only activities of alerts the viewer may see; those of an
    alert not known here yet only for viewers who see every alert."""
    activity = FollowUpActivity
    query = select(activity).where(
        col(activity.alert_id).is_not(None), col(activity.deleted).is_(False)
    )
    if not viewer.sees_everything:
        query = query.where(col(activity.alert_id).in_(visible_alert_ids(viewer)))
    if filters.date_from is not None:
        query = query.where(col(activity.starts_on) >= day_key(filters.date_from))
    if filters.date_to is not None:
        query = query.where(col(activity.starts_on) <= day_key(filters.date_to))
        query = query.where(col(activity.starts_on) > 0)
    if filters.item is not None:
        query = query.where(col(activity.items_key).contains(f";{filters.item};"))
    if filters.member is not None:
        query = query.where(
            col(activity.members_key).contains(f";{filters.member};", autoescape=True)
        )
    if filters.severity is not None:
        query = query.where(
            col(activity.alert_id).in_(
                select_columns(col(AlertBoardEntry.alert_id)).where(
                    col(AlertBoardEntry.severity) == filters.severity.value
                )
            )
        )
    found = await keyset_page(
        session,
        query,
        page=page,
        order_by=[col(activity.starts_on), col(activity.activity_id)],
        descending=True,
    )
    alert_ids = {row.alert_id for row in found.rows if row.alert_id}
    entries = {
        entry.alert_id: entry
        for entry in (
            await session.exec(
                select(AlertBoardEntry).where(col(AlertBoardEntry.alert_id).in_(alert_ids))
            )
        ).all()
        if viewer.may_see(audience_of(entry))
    }
    names = await member_names(
        session, {m for e in entries.values() for m in (e.raised_by_member, *e.affected_members)}
    )
    items = []
    for row in found.rows:
        assert row.alert_id is not None
        entry = entries.get(row.alert_id)
        items.append(
            FollowUpRow(
                activity=_public(row),
                alert_id=row.alert_id,
                alert=board_row(entry, names, now) if entry is not None else None,
            )
        )
    return FollowUpReport(items=items, next_cursor=found.next_cursor)


async def follow_ups_of(
    session: AsyncSession, alert_id: str, *, limit: int = 100
) -> list[FollowUpActivityPublic]:
    """The live activities that follow up one alert, in the order they start. The caller
    has checked that the viewer may see the alert."""
    found = await session.exec(
        select(FollowUpActivity)
        .where(col(FollowUpActivity.alert_id) == alert_id, col(FollowUpActivity.deleted).is_(False))
        .order_by(col(FollowUpActivity.starts_on), col(FollowUpActivity.activity_id))
        .limit(limit)
    )
    return [_public(row) for row in found.all()]


def _public(row: FollowUpActivity) -> FollowUpActivityPublic:
    day = row.starts_on
    return FollowUpActivityPublic(
        activity_id=row.activity_id,
        version=row.version,
        title=row.title,
        status=ActivityStatus(row.status),
        type=ActivityType(row.type),
        items=[int(n) for n in row.items_key.strip(";").split(";") if n],
        lead_member=row.lead_member,
        members=[m for m in row.members_key.strip(";").split(";") if m],
        starts_on=date(day // 10_000, day // 100 % 100, day % 100) if day else None,
    )


COLUMNS = (
    "activity_id",
    "title",
    "status",
    "type",
    "items",
    "lead_member",
    "members",
    "starts_on",
    "alert_id",
    "alert_title",
    "alert_status",
    "alert_severity",
    "alert_raised_at",
)


def rows(report: FollowUpReport) -> Iterator[list[Any]]:
    for row in report.items:
        alert = row.alert
        yield [
            row.activity.activity_id,
            row.activity.title,
            row.activity.status.value,
            row.activity.type.value,
            list_cell(row.activity.items),
            row.activity.lead_member,
            list_cell(row.activity.members),
            row.activity.starts_on,
            row.alert_id,
            alert.title if alert else None,
            alert.status.value if alert else None,
            alert.severity.value if alert else None,
            alert.raised_at if alert else None,
        ]
