"""Tables and API models of deliveries: the source events, each delivery and its attempts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from bali_common.db import utc_column
from bali_common.events.notifications import Channel
from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydanticField
from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from bali_notifications.fields import UtcDatetime, new_id, timestamp_now, timestamp_unset
from bali_notifications.subscriptions.models import Subscription


class SourceEvent(SQLModel, table=True):
    """An event that caused notifications, stored once and rendered for each delivery."""

    __tablename__ = "source_events"

    event_id: str = Field(primary_key=True, max_length=100)
    event_type: str = Field(max_length=100)
    event_version: int = 1
    subject: str = Field(max_length=200)
    occurred_at: datetime = Field(sa_column=utc_column())
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


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
    next_attempt_at: datetime | None = timestamp_unset()
    claimed_by: str | None = Field(default=None, max_length=200)
    claimed_until: datetime | None = timestamp_unset()
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    operator_warning: bool = False
    digest_delivery_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = timestamp_now()
    updated_at: datetime = timestamp_now()
    delivered_at: datetime | None = timestamp_unset()


class DeliveryAttempt(SQLModel, table=True):
    """What happened on one try: when, the status code, how long, and the error."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (UniqueConstraint("delivery_id", "number", name="uq_attempt_number"),)

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: str = Field(max_length=64, index=True)
    number: int
    attempted_at: datetime = Field(sa_column=utc_column())
    succeeded: bool
    status_code: int | None = None
    latency_ms: int | None = None
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


@dataclass(frozen=True)
class DeliveryJob:
    """A claimed delivery with what sending it needs, loaded before the transaction closes."""

    delivery: Delivery
    source: SourceEvent
    subscription: Subscription | None
    #: The members the directory lists as co-chairs at the claim: the rule is asked again.
    co_chairs: frozenset[str] = frozenset()


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
