"""Tables and API models of subscriptions: their filters, their target and their signing secrets."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from bali_common.catalogue import load_strategy
from bali_common.events import REGISTRY, Stream
from bali_common.events.alerts import Severity
from bali_common.events.notifications import Channel
from pydantic import BaseModel, ConfigDict, field_validator
from pydantic import Field as PydanticField
from sqlalchemy import JSON, Column, Text, false
from sqlmodel import Field, SQLModel

from bali_notifications.fields import (
    UtcDatetime,
    is_email_address,
    json_list,
    new_id,
    timestamp_now,
    timestamp_unset,
)


class DigestMode(StrEnum):
    immediate = "immediate"
    daily = "daily"


_EVENT_TYPE_PATTERNS = ("alert.*", "activity.*")


def subscribable_event_types() -> set[str]:
    """Alert and activity event types, plus a wildcard per stream."""
    types = {
        definition.type
        for definition in REGISTRY
        if definition.stream in (Stream.alerts, Stream.activities)
    }
    return types | set(_EVENT_TYPE_PATTERNS)


def _check_event_types(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    known = subscribable_event_types()
    unknown = [event_type for event_type in value if event_type not in known]
    if unknown:
        raise ValueError(f"unknown event types {unknown}; use alert.*, activity.* or a type")
    return value


def _check_areas(value: list[int] | None) -> list[int] | None:
    if value is None:
        return None
    areas = {area.number for area in load_strategy().areas}
    unknown = sorted(set(value) - areas)
    if unknown:
        raise ValueError(f"the strategy has no areas {unknown}")
    return value


def _check_items(value: list[int] | None) -> list[int] | None:
    if value is None:
        return None
    unknown = sorted(set(value) - load_strategy().item_numbers)
    if unknown:
        raise ValueError(f"the strategy has no items {unknown}")
    return value


def _check_email(value: str | None) -> str | None:
    if value is not None and not is_email_address(value):
        raise ValueError("not an email address")
    return value


class SubscriptionFilters(BaseModel):
    """What a subscription matches; an empty list matches everything on that dimension."""

    event_types: list[str] = PydanticField(
        default_factory=list,
        max_length=50,
        description="Event types such as alert.raised, or alert.* / activity.*; empty = all",
    )
    severities: list[Severity] = PydanticField(
        default_factory=list, max_length=5, description="Alert severities; empty = all"
    )
    area_numbers: list[Annotated[int, PydanticField(ge=1)]] = PydanticField(
        default_factory=list, max_length=50, description="Strategy areas; alerts are item 11"
    )
    item_numbers: list[Annotated[int, PydanticField(ge=1)]] = PydanticField(
        default_factory=list, max_length=50, description="Strategy items"
    )
    member_ids: list[Annotated[str, PydanticField(min_length=1, max_length=100)]] = PydanticField(
        default_factory=list,
        max_length=100,
        description="Members raising/affected by an alert, or leading/joining an activity",
    )


class SubscriptionBase(SubscriptionFilters):
    """Writable fields of a subscription, checked against the event registry and the catalogue."""

    name: str = PydanticField(min_length=1, max_length=200)
    channel: Channel
    email: str | None = PydanticField(
        default=None, max_length=320, description="Recipient address (channel email)"
    )
    url: str | None = PydanticField(
        default=None, max_length=2048, description="Receiver URL (channel webhook); https"
    )
    digest: DigestMode = PydanticField(
        default=DigestMode.immediate,
        description="daily: activity events arrive as one digest a day; alerts never wait",
    )

    _event_types = field_validator("event_types")(_check_event_types)
    _areas = field_validator("area_numbers")(_check_areas)
    _items = field_validator("item_numbers")(_check_items)
    _email = field_validator("email")(_check_email)


class SubscriptionCreate(SubscriptionBase):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Ops webhook for severe alerts",
                    "channel": "webhook",
                    "url": "https://hooks.example.org/bali",
                    "event_types": ["alert.*"],
                    "severities": ["Extreme", "Severe"],
                },
                {
                    "name": "Daily digest of area 2 activities",
                    "channel": "email",
                    "email": "focal.point@example.org",
                    "event_types": ["activity.*"],
                    "area_numbers": [2],
                    "digest": "daily",
                },
            ]
        },
    )

    member_id: str | None = PydanticField(
        default=None,
        max_length=100,
        description="Owner member; only administrators may name another member than their own",
    )


class SubscriptionUpdate(BaseModel):
    """Fields to change; absent fields keep their value. `enabled: true` re-enables after a 410."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"severities": ["Extreme"], "enabled": True}]},
    )

    name: str | None = PydanticField(default=None, min_length=1, max_length=200)
    email: str | None = PydanticField(default=None, max_length=320)
    url: str | None = PydanticField(default=None, max_length=2048)
    digest: DigestMode | None = None
    enabled: bool | None = None
    event_types: list[str] | None = PydanticField(default=None, max_length=50)
    severities: list[Severity] | None = PydanticField(default=None, max_length=5)
    area_numbers: list[Annotated[int, PydanticField(ge=1)]] | None = PydanticField(
        default=None, max_length=50
    )
    item_numbers: list[Annotated[int, PydanticField(ge=1)]] | None = PydanticField(
        default=None, max_length=50
    )
    member_ids: list[Annotated[str, PydanticField(min_length=1, max_length=100)]] | None = (
        PydanticField(default=None, max_length=100)
    )

    _event_types = field_validator("event_types")(_check_event_types)
    _areas = field_validator("area_numbers")(_check_areas)
    _items = field_validator("item_numbers")(_check_items)
    _email = field_validator("email")(_check_email)


class Subscription(SQLModel, table=True):
    """A member's standing request to be told about matching events on one channel."""

    __tablename__ = "subscriptions"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    member_id: str | None = Field(default=None, max_length=100, index=True)
    created_by: str = Field(max_length=300)
    name: str = Field(max_length=200)
    channel: str = Field(max_length=20)
    email: str | None = Field(default=None, max_length=320)
    url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    digest: str = Field(default=DigestMode.immediate.value, max_length=20)
    event_types: list[str] = json_list()
    severities: list[str] = json_list()
    area_numbers: list[int] = json_list()
    item_numbers: list[int] = json_list()
    member_ids: list[str] = json_list()
    for_co_chairs: bool = Field(
        default=False,
        # Rows from before this column serve no co-chair until a co-chair sets their target.
        sa_column_kwargs={"server_default": false()},
        description="Its target was set by an acting co-chair of its member: it receives what "
        "the co-chairs see while the directory lists the member as co-chair",
    )
    secrets: list[dict[str, Any]] = Field(
        default_factory=list,
        sa_column=Column(JSON, nullable=False),
        description="Webhook signing secrets, sealed: [{sealed, expires_at}] (secrets_at_rest); "
        "never returned after creation",
    )
    enabled: bool = True
    disabled_reason: str | None = Field(default=None, max_length=500)
    disabled_at: datetime | None = timestamp_unset()
    version: int = 1
    created_at: datetime = timestamp_now()
    updated_at: datetime = timestamp_now()
    deleted_at: datetime | None = timestamp_unset()


class SubscriptionPublic(SubscriptionFilters):
    model_config = ConfigDict(from_attributes=True)

    id: str
    member_id: str | None
    created_by: str
    name: str
    channel: Channel
    email: str | None
    url: str | None
    digest: DigestMode
    for_co_chairs: bool = PydanticField(
        description="Receives restricted alerts as the member's co-chairs do: set when a user "
        "with the co_chair role of the owning member creates it or sets its target, cleared when "
        "anyone else sets its target"
    )
    enabled: bool
    disabled_reason: str | None
    disabled_at: UtcDatetime | None
    version: int
    created_at: UtcDatetime
    updated_at: UtcDatetime


class SubscriptionCreated(SubscriptionPublic):
    secret: str | None = PydanticField(
        default=None,
        description="Webhook signing secret (whsec_...): shown only in this response",
    )


class SecretRotated(BaseModel):
    secret: str = PydanticField(description="The new whsec_ secret: shown only once")
    previous_secret_expires_at: UtcDatetime | None = PydanticField(
        description="Until then deliveries carry signatures with both secrets"
    )
