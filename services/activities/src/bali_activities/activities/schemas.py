"""API models of the activity log: filters, requests, answers and the import report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from bali_common.events.activities import ActivityStatus, ActivityType, ParticipantRole
from bali_common.http.pagination import Page
from bali_common.problems import FieldProblem
from pydantic import BaseModel, ConfigDict, Field, field_validator

from bali_activities.activities.fields import (
    AlertId,
    Country,
    Description,
    DocumentLink,
    ItemNumber,
    OutputIn,
    ParticipantIn,
    Tag,
    Title,
)
from bali_activities.activities.models import (
    MAX_COUNTRIES,
    MAX_DOCUMENTS,
    MAX_ITEM,
    MAX_OUTPUTS,
    MAX_PARTICIPANTS,
    MAX_TAGS,
    STRATEGY,
)
from bali_activities.members.models import MemberId


@dataclass(frozen=True)
class ActivityFilters:
    """What a list or an export is narrowed to; every filter given must match."""

    item: int | None = None
    area: int | None = None
    member: str | None = None
    lead_member: str | None = None
    status: ActivityStatus | None = None
    type: ActivityType | None = None
    date_from: date | None = None
    date_to: date | None = None
    tag: str | None = None
    country: str | None = None
    q: str | None = None
    include_deleted: bool = False


# --- API models -------------------------------------------------------------------------------


_CREATE_EXAMPLE: dict[str, Any] = {
    "title": "Regional workshop on trafficking into online scam operations",
    "description": "Two-day workshop for law enforcement and victim-support officers.",
    "items": [3, 12],
    "type": "workshop",
    "status": "completed",
    "participants": [
        {"member_id": "TH", "role": "co_lead"},
        {"member_id": "IOM", "role": "participant"},
        {"member_id": "AU", "role": "funder"},
    ],
    "planned_start": "2025-03-10",
    "planned_end": "2025-03-11",
    "actual_start": "2025-03-10",
    "actual_end": "2025-03-11",
    "countries": ["TH"],
    "outputs": [
        {
            "indicator": "officers trained",
            "value": 40,
            "by_sex": {"female": 18, "male": 22},
            "by_age": [{"age_group": "25-39", "value": 31}, {"age_group": "40-59", "value": 9}],
        }
    ],
    "tags": ["online scam operations", "digital literacy"],
    "documents": [{"title": "Workshop report", "url": "https://docs.example/report.pdf"}],
}


class ActivityFields(BaseModel):
    """Every field a client may set; what the validation rules see after a change is merged."""

    model_config = ConfigDict(extra="forbid")

    title: Title
    description: Description = ""
    items: list[ItemNumber] = Field(min_length=1, max_length=MAX_ITEM)
    type: ActivityType
    status: ActivityStatus = ActivityStatus.planned
    lead_member: MemberId | None = Field(
        default=None,
        description="The lead agency; members may only name themselves (the default), "
        "admins must name one",
    )
    participants: list[ParticipantIn] = Field(
        default_factory=list,
        max_length=MAX_PARTICIPANTS,
        description="Members other than the lead, with their roles",
    )
    planned_start: date | None = None
    planned_end: date | None = None
    actual_start: date | None = None
    actual_end: date | None = None
    countries: list[Country] = Field(default_factory=list, max_length=MAX_COUNTRIES)
    outputs: list[OutputIn] = Field(default_factory=list, max_length=MAX_OUTPUTS)
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    documents: list[DocumentLink] = Field(default_factory=list, max_length=MAX_DOCUMENTS)
    related_alert_id: AlertId | None = Field(
        default=None, description="The Consultation Mechanism alert this activity responds to"
    )


class ActivityCreate(ActivityFields):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_CREATE_EXAMPLE]})


_NOT_NULL = (
    "title",
    "description",
    "items",
    "type",
    "status",
    "lead_member",
    "participants",
    "countries",
    "outputs",
    "tags",
    "documents",
)


class ActivityUpdate(BaseModel):
    """Only the fields sent change; `null` clears a date or the related alert."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"status": "completed", "actual_end": "2025-03-11"},
                {"tags": ["biometrics"], "items": [15, 16]},
            ]
        },
    )

    title: Title | None = None
    description: Description | None = None
    items: list[ItemNumber] | None = Field(default=None, min_length=1, max_length=MAX_ITEM)
    type: ActivityType | None = None
    status: ActivityStatus | None = None
    lead_member: MemberId | None = Field(default=None, description="Admins only")
    participants: list[ParticipantIn] | None = Field(default=None, max_length=MAX_PARTICIPANTS)
    planned_start: date | None = None
    planned_end: date | None = None
    actual_start: date | None = None
    actual_end: date | None = None
    countries: list[Country] | None = Field(default=None, max_length=MAX_COUNTRIES)
    outputs: list[OutputIn] | None = Field(default=None, max_length=MAX_OUTPUTS)
    tags: list[Tag] | None = Field(default=None, max_length=MAX_TAGS)
    documents: list[DocumentLink] | None = Field(default=None, max_length=MAX_DOCUMENTS)
    related_alert_id: AlertId | None = None

    @field_validator(*_NOT_NULL, mode="before")
    @classmethod
    def _sent_fields_not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may not be null")
        return value


class ParticipantPublic(BaseModel):
    member_id: str
    role: ParticipantRole


_PUBLIC_EXAMPLE: dict[str, Any] = {
    "id": "0b6f3f8e-2f7c-4a38-9a43-6c1f1f1f9a01",
    "version": 3,
    "strategy_id": STRATEGY.id,
    **_CREATE_EXAMPLE,
    "areas": [1, 4],
    "lead_member": "ID",
    "participants": [{"member_id": "ID", "role": "lead"}, *_CREATE_EXAMPLE["participants"]],
    "related_alert_id": None,
    "created_at": "2025-02-01T08:00:00Z",
    "updated_at": "2025-03-12T09:30:00Z",
    "deleted": False,
    "deleted_at": None,
}


class ActivityPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_PUBLIC_EXAMPLE]})

    id: str
    version: int = Field(description='Counts changes; the ETag is `"v<version>"`')
    strategy_id: str
    title: str
    description: str
    items: list[int]
    areas: list[int] = Field(description="Strategy areas of the items, derived")
    type: ActivityType
    status: ActivityStatus
    lead_member: str
    participants: list[ParticipantPublic] = Field(
        description="Every member involved, the lead first"
    )
    planned_start: date | None
    planned_end: date | None
    actual_start: date | None
    actual_end: date | None
    countries: list[str]
    outputs: list[OutputIn]
    tags: list[str]
    documents: list[DocumentLink]
    related_alert_id: str | None
    created_at: datetime
    updated_at: datetime
    deleted: bool
    deleted_at: datetime | None


class ActivitiesPublic(Page[ActivityPublic]):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"items": [_PUBLIC_EXAMPLE], "next_cursor": "WyIyMDI1LTAyLTAxIl0"}]
        }
    )


class ActorPublic(BaseModel):
    subject: str
    member_id: str | None = None
    name: str | None = None


class ActivityVersionPublic(BaseModel):
    version: int
    action: str = Field(description="created, updated, status_changed, deleted or restored")
    at: datetime
    actor: ActorPublic
    changed_fields: list[str]
    changes: dict[str, dict[str, Any]] = Field(
        description='Each changed field as {"from": old, "to": new}'
    )
    trace_id: str | None = None
    snapshot: ActivityPublic = Field(description="The whole activity as of this version")


_VERSION_EXAMPLE: dict[str, Any] = {
    "version": 2,
    "action": "status_changed",
    "at": "2025-03-12T09:30:00Z",
    "actor": {"subject": "user-of-ID", "member_id": "ID", "name": None},
    "changed_fields": ["status", "actual_end"],
    "changes": {
        "status": {"from": "ongoing", "to": "completed"},
        "actual_end": {"from": None, "to": "2025-03-11"},
    },
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "snapshot": _PUBLIC_EXAMPLE,
}


class ActivityHistoryPublic(Page[ActivityVersionPublic]):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"items": [_VERSION_EXAMPLE], "next_cursor": None}]}
    )


# --- bulk import ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportRow:
    """One data row of an uploaded sheet, its cells already turned into API field values."""

    row: int
    values: dict[str, Any]
    activity_id: str | None = None
    version: int | None = None
    problems: tuple[FieldProblem, ...] = ()


class ImportRowResult(BaseModel):
    row: int = Field(description="Row number in the sheet; the header is row 1")
    action: Literal["create", "update", "unchanged", "error"]
    activity_id: str | None = Field(
        default=None, description="The activity updated or created (absent for a dry-run create)"
    )
    changed_fields: list[str] = Field(default_factory=list)
    errors: list[FieldProblem] = Field(default_factory=list)


_REPORT_EXAMPLE: dict[str, Any] = {
    "dry_run": True,
    "applied": False,
    "format": "csv",
    "rows": 3,
    "created": 1,
    "updated": 1,
    "unchanged": 0,
    "failed": 1,
    "results": [
        {"row": 2, "action": "create", "activity_id": None, "changed_fields": [], "errors": []},
        {
            "row": 3,
            "action": "update",
            "activity_id": "0b6f3f8e-2f7c-4a38-9a43-6c1f1f1f9a01",
            "changed_fields": ["status", "actual_end"],
            "errors": [],
        },
        {
            "row": 4,
            "action": "error",
            "activity_id": None,
            "changed_fields": [],
            "errors": [
                {
                    "field": "rows.4.planned_end",
                    "message": "must not be before planned_start",
                    "type": "value_error",
                }
            ],
        },
    ],
}


class ImportReport(BaseModel):
    """What an import did, or in a dry run would do, row by row."""

    model_config = ConfigDict(json_schema_extra={"examples": [_REPORT_EXAMPLE]})

    dry_run: bool
    applied: bool = Field(description="True when the changes were committed")
    format: Literal["csv", "xlsx"]
    rows: int
    created: int
    updated: int
    unchanged: int
    failed: int
    results: list[ImportRowResult]
