"""What one attempt means for its delivery: delivered, tried again at a time, or given up on."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from bali_common.events.alerts import Severity

from bali_notifications.channels import SendResult
from bali_notifications.deliveries.models import Delivery, DeliveryStatus
from bali_notifications.settings import NotificationsSettings


class FinalReason(StrEnum):
    """Why no further attempt follows (the `reason` of notification.exhausted)."""

    permanent_failure = "permanent_failure"
    endpoint_disabled = "endpoint_disabled"
    retries_exhausted = "retries_exhausted"
    #: The visibility rule no longer lets the recipient see the alert (checked at send time).
    not_permitted = "not_permitted"


class OperatorWarning(StrEnum):
    """Operators must know when a delivery of an Extreme alert is not getting through."""

    extreme_failing = "extreme_failing"
    extreme_undeliverable = "extreme_undeliverable"


@dataclass(frozen=True)
class RetryPolicy:
    """When a failed delivery is tried again, and when operators hear of it."""

    schedule_s: Sequence[float]
    jitter: float
    retry_after_max_s: float
    warn_after_failures: int

    @classmethod
    def of(cls, settings: NotificationsSettings) -> RetryPolicy:
        return cls(
            schedule_s=tuple(settings.delivery_retry_schedule_s),
            jitter=settings.delivery_retry_jitter,
            retry_after_max_s=settings.retry_after_max_s,
            warn_after_failures=settings.operator_warning_after_failures,
        )


@dataclass(frozen=True)
class Outcome:
    """The delivery's new status, its next attempt, and what else the attempt set off."""

    status: DeliveryStatus
    next_attempt_at: datetime | None = None
    #: The error of the notification.failed or notification.exhausted event.
    error: str | None = None
    reason: FinalReason | None = None
    disable_endpoint: bool = False
    warning: OperatorWarning | None = None


def outcome_of(
    result: SendResult,
    *,
    delivery: Delivery,
    policy: RetryPolicy,
    now: datetime,
    rng: random.Random,
) -> Outcome:
    """What `result` means for `delivery`, whose attempt counts already include it."""
    if result.succeeded:
        return Outcome(status=DeliveryStatus.delivered)
    if result.permanent:
        disable = result.disable_endpoint and delivery.subscription_id is not None
        return Outcome(
            status=DeliveryStatus.failed,
            error=result.error or "refused",
            reason=FinalReason.endpoint_disabled if disable else FinalReason.permanent_failure,
            disable_endpoint=disable,
            warning=_warning_on_giving_up(delivery),
        )
    if delivery.attempts_in_round > len(policy.schedule_s):
        return Outcome(
            status=DeliveryStatus.exhausted,
            error=result.error or "failed",
            reason=FinalReason.retries_exhausted,
            warning=_warning_on_giving_up(delivery),
        )
    failing = (
        delivery.attempts_in_round >= policy.warn_after_failures
        and not delivery.operator_warning
        and _is_extreme(delivery)
    )
    return Outcome(
        status=DeliveryStatus.retrying,
        next_attempt_at=retry_at(
            delivery.attempts_in_round, result, policy=policy, now=now, rng=rng
        ),
        error=result.error or "failed",
        warning=OperatorWarning.extreme_failing if failing else None,
    )


def retry_at(
    attempt: int, result: SendResult, *, policy: RetryPolicy, now: datetime, rng: random.Random
) -> datetime:
    """Exponential schedule from settings, +/- jitter; never before a 429's Retry-After."""
    schedule = policy.schedule_s
    base = schedule[min(attempt, len(schedule)) - 1]
    delay = base * rng.uniform(1 - policy.jitter, 1 + policy.jitter)
    if result.retry_after_s is not None:
        delay = max(delay, min(result.retry_after_s, policy.retry_after_max_s))
    return now + timedelta(seconds=delay)


def _warning_on_giving_up(delivery: Delivery) -> OperatorWarning | None:
    """An Extreme alert someone will never hear of: operators are told every time."""
    return OperatorWarning.extreme_undeliverable if _is_extreme(delivery) else None


def _is_extreme(delivery: Delivery) -> bool:
    return delivery.severity == Severity.extreme.value
