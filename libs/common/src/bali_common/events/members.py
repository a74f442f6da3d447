"""Events of the members stream: the member directory, published by the activities service.

Each event carries the member's whole current state and its version, so a
consumer upserts it and ignores any event older than what it holds.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from bali_common.events.registry import EventPayload, event_type
from bali_common.events.topics import Stream


class MemberKind(StrEnum):
    member_state = "member_state"
    international_organisation = "international_organisation"
    regional_support_office = "regional_support_office"
    working_group = "working_group"


class FocalPointRole(StrEnum):
    focal_point = "focal_point"
    senior_official = "senior_official"


class FocalPointData(BaseModel):
    model_config = ConfigDict(frozen=True)

    focal_point_id: str
    name: str
    email: str
    role: FocalPointRole = FocalPointRole.focal_point
    webhook_url: str | None = None
    active: bool = True


class MemberSnapshot(EventPayload):
    member_id: str = Field(description="Short stable code, e.g. 'AU', 'ID', 'IOM', 'RSO'")
    name: str
    kind: MemberKind
    is_co_chair: bool = False
    active: bool = True
    focal_points: list[FocalPointData] = Field(default_factory=list)
    version: int = Field(ge=1, description="Increases with every change of the member")


@event_type("member.registered", stream=Stream.members)
class MemberRegistered(MemberSnapshot):
    """A member joined the directory (also emitted for the reference membership at first start)."""


@event_type("member.updated", stream=Stream.members)
class MemberUpdated(MemberSnapshot):
    """A member or its focal points changed; carries the whole new state."""
