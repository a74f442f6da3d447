"""Events of the notifications stream: outcomes of deliveries to people and systems."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from bali_common.events.registry import EventPayload, event_type
from bali_common.events.topics import Stream


class Channel(StrEnum):
    email = "email"
    webhook = "webhook"
    inbox = "inbox"


class DeliveryEvent(EventPayload):
    delivery_id: str
    source_event_id: str = Field(description="The event that caused this notification")
    source_event_type: str
    channel: Channel
    recipient: str = Field(description="Email address, webhook endpoint id or inbox owner")
    member_id: str | None = None
    alert_id: str | None = None
    severity: str | None = None
    attempt: int = Field(ge=0)
    occurred_at: datetime


@event_type("notification.sent", stream=Stream.notifications)
class NotificationSent(DeliveryEvent):
    """A delivery attempt was handed to its channel."""


@event_type("notification.delivered", stream=Stream.notifications)
class NotificationDelivered(DeliveryEvent):
    """The channel confirmed the delivery (SMTP accepted, webhook 2xx, inbox stored)."""

    latency_ms: int | None = None


@event_type("notification.failed", stream=Stream.notifications)
class NotificationFailed(DeliveryEvent):
    """An attempt failed and will be retried."""

    error: str
    next_attempt_at: datetime | None = None
    status_code: int | None = Field(default=None, description="HTTP or SMTP reply code, if any")
    operator_warning: bool = Field(
        default=False,
        description="True once a delivery of an Extreme alert has kept failing: warn operators",
    )


@event_type("notification.exhausted", stream=Stream.notifications)
class NotificationExhausted(DeliveryEvent):
    """Every attempt failed; the delivery is dead-lettered and operators are warned.

    Also published when the receiver refused for good (410 Gone, a permanent SMTP
    rejection): no further attempt will be made without a replay.
    """

    error: str
    reason: str = Field(
        default="retries_exhausted",
        description="retries_exhausted | permanent_failure | endpoint_disabled",
    )
    status_code: int | None = Field(default=None, description="Last HTTP or SMTP reply code")
    operator_warning: bool = Field(
        default=False, description="True for Extreme alerts: the dashboard raises it"
    )
