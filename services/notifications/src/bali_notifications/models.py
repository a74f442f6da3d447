"""Tables and API models of the notifications service: subscriptions, deliveries, inbox, members."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from uuid import uuid4

from bali_common.catalogue import load_strategy
from bali_common.db import as_utc, utcnow
from bali_common.events import REGISTRY, Stream
from bali_common.events.alerts import AlertStatus, Severity
from bali_common.events.notifications import Channel
from pydantic import AfterValidator, BaseModel, ConfigDict, computed_field, field_validator
from pydantic import Field as PydanticField
from sqlalchemy import JSON, Column, DateTime, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def new_id() -> str:
    return str(uuid4())


#: SQLite hands back naive datetimes for what was stored as UTC; the API always says UTC.
UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


def _timestamp_now() -> Any:
    """A required timezone-aware column, now unless set (a fresh Column per table field)."""
    return Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


def _timestamp_unset() -> Any:
    """A timezone-aware column that stays NULL until the moment it records happens."""
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


def _json_list() -> Any:
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False))


# --- members projection -------------------------------------------------------------------


class MemberEntry(SQLModel, table=True):
    """The member directory as the activities service last published it (upserted by version)."""

    __tablename__ = "member_directory"

    member_id: str = Field(primary_key=True, max_length=100)
    name: str = Field(max_length=300)
    kind: str = Field(max_length=50)
    is_co_chair: bool = False
    active: bool = True
    version: int
    focal_points: list[dict[str, Any]] = _json_list()
    updated_at: datetime = _timestamp_now()


# --- source events ------------------------------------------------------------------------


class SourceEvent(SQLModel, table=True):
    """An event that caused notifications, stored once and rendered for each delivery."""

    __tablename__ = "source_events"

    event_id: str = Field(primary_key=True, max_length=100)
    event_type: str = Field(max_length=100)
    event_version: int = 1
    subject: str = Field(max_length=200)
    occurred_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


# --- alerts projection --------------------------------------------------------------------

#: An alert in one of these states needs nobody told any more.
CLOSED_ALERT_STATUSES = (AlertStatus.resolved.value, AlertStatus.withdrawn.value)


class AlertState(SQLModel, table=True):
    """Each alert's latest state, kept from alert.* events (upserted by version).

    Routing reads the member directory when an alert event is planned; whoever
    joins the directory later is planned from here (`plan_missed_alert_notifications`).
    """

    __tablename__ = "alert_states"

    alert_id: str = Field(primary_key=True, max_length=100)
    version: int
    status: str = Field(max_length=40)
    severity: str = Field(max_length=20)
    raised_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, index=True)
    )
    affected_members: list[str] = _json_list()
    senior_officials_notified: bool = Field(
        default=False, description="An escalation asked for the co-chairs' senior officials"
    )
    event_id: str = Field(max_length=100, description="The latest event, kept in source_events")
    event_type: str = Field(max_length=100)
    updated_at: datetime = _timestamp_now()


# --- subscriptions ------------------------------------------------------------------------


class DigestMode(StrEnum):
    immediate = "immediate"
    daily = "daily"


_EVENT_TYPE_PATTERNS = ("alert.*", "activity.*")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


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
    if value is not None and not _EMAIL.fullmatch(value):
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
    event_types: list[str] = _json_list()
    severities: list[str] = _json_list()
    area_numbers: list[int] = _json_list()
    item_numbers: list[int] = _json_list()
    member_ids: list[str] = _json_list()
    secrets: list[dict[str, Any]] = Field(
        default_factory=list,
        sa_column=Column(JSON, nullable=False),
        description="Webhook signing secrets [{secret, expires_at}]; never returned after creation",
    )
    enabled: bool = True
    disabled_reason: str | None = Field(default=None, max_length=500)
    disabled_at: datetime | None = _timestamp_unset()
    version: int = 1
    created_at: datetime = _timestamp_now()
    updated_at: datetime = _timestamp_now()
    deleted_at: datetime | None = _timestamp_unset()


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


# --- deliveries ---------------------------------------------------------------------------


class DeliveryStatus(StrEnum):
    pending = "pending"
    retrying = "retrying"
    delivered = "delivered"
    failed = "failed"
    exhausted = "exhausted"
    queued_for_digest = "queued_for_digest"
    digested = "digested"


#: Statuses the dispatcher picks up when due.
DUE_STATUSES = (DeliveryStatus.pending.value, DeliveryStatus.retrying.value)
#: Statuses an operator or owner may replay.
REPLAYABLE_STATUSES = (
    DeliveryStatus.failed.value,
    DeliveryStatus.exhausted.value,
    DeliveryStatus.retrying.value,
)


class DeliveryReason(StrEnum):
    co_chair = "co_chair"
    affected_member = "affected_member"
    senior_official = "senior_official"
    subscription = "subscription"


class Delivery(SQLModel, table=True):
    """One notification of one event to one recipient on one channel: never twice."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("source_event_id", "recipient", "channel", name="uq_delivery_once"),
        Index("ix_deliveries_due", "status", "next_attempt_at"),
        Index("ix_deliveries_listing", "created_at", "id"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    source_event_id: str = Field(max_length=100)
    event_type: str = Field(max_length=100, index=True)
    channel: str = Field(max_length=20)
    recipient: str = Field(max_length=320, description="Email, webhook subscription id or inbox")
    member_id: str | None = Field(default=None, max_length=100, index=True)
    subscription_id: str | None = Field(default=None, max_length=64, index=True)
    alert_id: str | None = Field(default=None, max_length=100, index=True)
    severity: str | None = Field(default=None, max_length=20)
    reason: str = Field(max_length=30)
    acknowledge_link: bool = False
    status: str = Field(default=DeliveryStatus.pending.value, max_length=30)
    attempt_count: int = 0
    attempts_in_round: int = Field(default=0, description="Attempts since creation or replay")
    next_attempt_at: datetime | None = _timestamp_unset()
    claimed_by: str | None = Field(default=None, max_length=200)
    claimed_until: datetime | None = _timestamp_unset()
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    operator_warning: bool = False
    digest_delivery_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = _timestamp_now()
    updated_at: datetime = _timestamp_now()
    delivered_at: datetime | None = _timestamp_unset()


class DeliveryAttempt(SQLModel, table=True):
    """What happened on one try: when, the status code, how long, and the error."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (UniqueConstraint("delivery_id", "number", name="uq_attempt_number"),)

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: str = Field(max_length=64, index=True)
    number: int
    attempted_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    succeeded: bool
    status_code: int | None = None
    latency_ms: int | None = None
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class DeliveryPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = PydanticField(description="Also the webhook-id header, stable across retries")
    source_event_id: str
    event_type: str
    channel: Channel
    recipient: str
    member_id: str | None
    subscription_id: str | None
    alert_id: str | None
    severity: str | None
    reason: str
    status: DeliveryStatus
    attempt_count: int
    next_attempt_at: UtcDatetime | None
    last_status_code: int | None
    last_error: str | None
    operator_warning: bool
    created_at: UtcDatetime
    updated_at: UtcDatetime
    delivered_at: UtcDatetime | None


class DeliveryFilters(BaseModel):
    """Query filters of the delivery listing, each an exact match; absent ones match all."""

    status: DeliveryStatus | None = None
    channel: Channel | None = None
    alert_id: str | None = PydanticField(default=None, max_length=100)
    event_type: str | None = PydanticField(default=None, max_length=100)
    member_id: str | None = PydanticField(default=None, max_length=100)
    subscription_id: str | None = PydanticField(default=None, max_length=64)
    operator_warning: bool | None = None


class DeliveryAttemptPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int
    attempted_at: UtcDatetime
    succeeded: bool
    status_code: int | None
    latency_ms: int | None
    error: str | None


class DeliveryDetail(DeliveryPublic):
    attempts: list[DeliveryAttemptPublic]


# --- inbox --------------------------------------------------------------------------------


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
    created_at: datetime = _timestamp_now()
    read_at: datetime | None = _timestamp_unset()


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


MODELS: list[type[SQLModel]] = [
    MemberEntry,
    SourceEvent,
    AlertState,
    Subscription,
    Delivery,
    DeliveryAttempt,
    InboxItem,
]
