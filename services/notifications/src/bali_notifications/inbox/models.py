"""Table and API models of the in-app inbox."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, computed_field
from pydantic import Field as PydanticField
from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel

from bali_notifications.fields import UtcDatetime, timestamp_now, timestamp_unset

#: Inbox ids are 32-bit integers on PostgreSQL; anything larger cannot exist.
MAX_ITEM_ID = 2_147_483_647


class InboxItem(SQLModel, table=True):
    """An in-app notification for a member (`member:ID`) or one user (`user:SUBJECT`)."""

    __tablename__ = "inbox_items"
    __table_args__ = (Index("ix_inbox_owner", "owner", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    owner: str = Field(max_length=320)
    delivery_id: str = Field(max_length=64, unique=True)
    event_type: str = Field(max_length=100)
    title: str = Field(max_length=500)
    body: str = Field(sa_column=Column(Text, nullable=False))
    severity: str | None = Field(default=None, max_length=20)
    alert_id: str | None = Field(default=None, max_length=100)
    created_at: datetime = timestamp_now()
    read_at: datetime | None = timestamp_unset()


class InboxItemPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    owner: str = PydanticField(description="member:<id> (whole member) or user:<subject>")
    event_type: str
    title: str
    body: str
    severity: str | None
    alert_id: str | None
    created_at: UtcDatetime
    read_at: UtcDatetime | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def read(self) -> bool:
        return self.read_at is not None


class InboxPage(BaseModel):
    items: list[InboxItemPublic]
    next_cursor: str | None = None
    unread_count: int


class InboxItemUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"read": True}]})

    read: bool
