"""Read models of the reporting service."""

from __future__ import annotations

from datetime import datetime

from bali_common.db import utcnow
from pydantic import BaseModel
from sqlalchemy import Column, DateTime
from sqlmodel import Field, SQLModel


class EventTally(SQLModel, table=True):
    """How many events of each type the pipeline delivered here: the first health projection."""

    __tablename__ = "event_tallies"

    event_type: str = Field(primary_key=True, max_length=100)
    stream: str = Field(max_length=50)
    count: int = 0
    last_event_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class EventTallyPublic(BaseModel):
    event_type: str
    stream: str
    count: int
    last_event_at: datetime


class EventTalliesPublic(BaseModel):
    items: list[EventTallyPublic]
    total: int
