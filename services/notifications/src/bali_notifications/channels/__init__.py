"""How notifications leave the service: one `ChannelSender` per channel kind."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlmodel import SQLModel

from bali_notifications.deliveries.models import DeliveryJob
from bali_notifications.rendering import Rendered
from bali_notifications.subscriptions.models import Subscription


@dataclass(frozen=True)
class Target:
    """Where a subscription's notifications go: an address, a URL, or neither (the inbox)."""

    email: str | None = None
    url: str | None = None


class UnusableTarget(ValueError):
    """A target its channel cannot deliver to; `field` names the part at fault."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class Notification:
    """One claimed delivery and what it says: everything a sender needs."""

    job: DeliveryJob
    rendered: Rendered


@dataclass(frozen=True)
class SendResult:
    """What one attempt came to; `outcome_of` says what that means for the delivery."""

    succeeded: bool
    latency_ms: int
    status_code: int | None = None
    error: str | None = None
    permanent: bool = False
    disable_endpoint: bool = False
    retry_after_s: float | None = None
    #: Rows of a channel that delivers into this database (an inbox item): written in the
    #: transaction that records the attempt, so they exist exactly when it succeeded.
    stored: tuple[SQLModel, ...] = ()
    #: Called once that transaction committed (the inbox pushes its item to live streams).
    on_committed: Callable[[], None] | None = None


class ChannelSender(Protocol):
    """One channel: which targets it takes, whom a subscription's deliveries go to, sending.

    A channel is a module with its sender plus one entry in the composition root's
    mapping from channel kind to sender (`app.channel_senders`); nothing else
    branches on the kind.
    """

    async def check_target(self, target: Target) -> Target:
        """The target as stored (normalised); raises UnusableTarget if it cannot be used."""
        ...

    def address_of(self, subscription: Subscription) -> str:
        """The recipient of the subscription's deliveries: one delivery per event and address."""
        ...

    async def send(self, notification: Notification, *, now: datetime) -> SendResult:
        """Deliver one notification; failures are reported in the result, never raised."""
        ...

    async def aclose(self) -> None:
        """Release what the sender keeps open between sends."""
        ...


def elapsed_ms(started: float) -> int:
    """Milliseconds since `started`, a `time.perf_counter()` reading."""
    return int((time.perf_counter() - started) * 1000)
