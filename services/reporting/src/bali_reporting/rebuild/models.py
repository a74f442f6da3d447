"""A rebuild run as stored (any replica can answer for it) and as the progress resource shows it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from bali_common.db import as_utc, utc_column
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Field as TableField
from sqlmodel import SQLModel


class RebuildState(StrEnum):
    queued = "queued"
    replaying = "replaying"  # reading every topic from offset 0 while the live consumer runs
    catching_up = "catching_up"  # live consumer paused: reading up to its committed offsets
    swapping = "swapping"
    done = "done"
    failed = "failed"
    abandoned = "abandoned"  # the process running it stopped before it finished


FINISHED = frozenset({RebuildState.done, RebuildState.failed, RebuildState.abandoned})
#: States in which every replica keeps its live consumer paused.
PAUSING = frozenset({RebuildState.catching_up.value, RebuildState.swapping.value})


class RebuildRun(SQLModel, table=True):
    __tablename__ = "rebuild_runs"

    id: str = TableField(primary_key=True, max_length=32)
    state: str = TableField(max_length=20)
    requested_by: str = TableField(max_length=200)
    requested_at: datetime = TableField(sa_column=utc_column())
    updated_at: datetime = TableField(sa_column=utc_column())
    started_at: datetime | None = TableField(default=None, sa_column=utc_column(nullable=True))
    finished_at: datetime | None = TableField(default=None, sa_column=utc_column(nullable=True))
    events_read: int = 0
    events_applied: int = 0
    events_target: int | None = None
    duplicates: int = 0
    skipped: int = 0
    failed: int = 0
    error: str | None = TableField(default=None, max_length=2000)


class RebuildStatus(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "5f1c9e7a0c2d4b0f9a1e3c5d7b9f1a2c",
                    "state": "replaying",
                    "requested_by": "platform-admin",
                    "requested_at": "2025-11-28T03:10:00Z",
                    "started_at": "2025-11-28T03:10:00Z",
                    "finished_at": None,
                    "events_read": 12000,
                    "events_applied": 11990,
                    "events_target": 52000,
                    "duplicates": 10,
                    "skipped": 0,
                    "failed": 0,
                    "events_per_second": 6000.0,
                    "error": None,
                }
            ]
        }
    )

    id: str
    state: RebuildState
    requested_by: str
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    events_read: int = Field(description="Records read from the topics so far")
    events_applied: int = Field(description="Events applied to the new tables")
    events_target: int | None = Field(
        description="Records up to the positions to reach, once known"
    )
    duplicates: int = Field(description="Records of an event already applied (published twice)")
    skipped: int = Field(
        description="Records that are not events of ours, or of types not read here"
    )
    failed: int = Field(description="Events a projection could not apply (logged)")
    events_per_second: float | None
    error: str | None

    @classmethod
    def of(cls, run: RebuildRun) -> RebuildStatus:
        started = as_utc(run.started_at) if run.started_at else None
        until = as_utc(run.finished_at or run.updated_at)
        elapsed = (until - started).total_seconds() if started else 0.0
        return cls(
            id=run.id,
            state=RebuildState(run.state),
            requested_by=run.requested_by,
            requested_at=as_utc(run.requested_at),
            started_at=started,
            finished_at=as_utc(run.finished_at) if run.finished_at else None,
            events_read=run.events_read,
            events_applied=run.events_applied,
            events_target=run.events_target,
            duplicates=run.duplicates,
            skipped=run.skipped,
            failed=run.failed,
            events_per_second=round(run.events_read / elapsed, 1) if elapsed > 0 else None,
            error=run.error,
        )
