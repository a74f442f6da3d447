"""The member directory as the activities service publishes it: members, focal points, co-chairs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

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

