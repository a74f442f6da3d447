"""What an attempt means for its delivery, decided without a database or a clock."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from bali_notifications.channels import SendResult
from bali_notifications.deliveries.models import Delivery, DeliveryStatus
from bali_notifications.deliveries.outcomes import (
    FinalReason,
    OperatorWarning,
    Outcome,
    RetryPolicy,
    outcome_of,
    retry_at,
)
from bali_notifications.settings import NotificationsSettings

NOW = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
POLICY = RetryPolicy(
    schedule_s=(5.0, 300.0, 1_800.0), jitter=0.2, retry_after_max_s=3_600, warn_after_failures=2
)
UNAVAILABLE = SendResult(succeeded=False, latency_ms=30, status_code=503, error="HTTP 503")
GONE = SendResult(
    succeeded=False,
    latency_ms=30,
    status_code=410,
    error="410 Gone: endpoint disabled",
    permanent=True,
    disable_endpoint=True,
)
MAILBOX_UNAVAILABLE = SendResult(
    succeeded=False, latency_ms=30, status_code=550, error="SMTP 550: no such user", permanent=True
)


def delivery(
    attempt: int,
    *,
    severity: str | None = "Severe",
    warned: bool = False,
    subscription_id: str | None = "sub-1",
) -> Delivery:
    """A delivery whose attempt counts include the attempt being judged."""
    return Delivery(
        source_event_id="evt-1",
        event_type="alert.raised",
        channel="webhook",
        recipient="sub-1",
        subscription_id=subscription_id,
        alert_id="alert-1",
        severity=severity,
        reason="subscription",
        attempt_count=attempt,
        attempts_in_round=attempt,
        operator_warning=warned,
    )


def judge(result: SendResult, judged: Delivery, seed: int = 7) -> Outcome:
    return outcome_of(result, delivery=judged, policy=POLICY, now=NOW, rng=random.Random(seed))


def test_a_success_is_delivered_with_nothing_more_to_do() -> None:
    success = SendResult(succeeded=True, latency_ms=30, status_code=204)
    assert judge(success, delivery(1, severity="Extreme")) == Outcome(
        status=DeliveryStatus.delivered
    )


@pytest.mark.parametrize(("attempt", "step"), [(1, 5.0), (2, 300.0), (3, 1_800.0)])
def test_a_failure_is_retried_on_the_schedule_within_the_jitter(attempt: int, step: float) -> None:
    outcome = judge(UNAVAILABLE, delivery(attempt))
    assert outcome.status is DeliveryStatus.retrying
    assert outcome.error == "HTTP 503"
    assert (outcome.reason, outcome.disable_endpoint, outcome.warning) == (None, False, None)
    assert outcome.next_attempt_at is not None
    delay = (outcome.next_attempt_at - NOW).total_seconds()
    assert step * 0.8 <= delay <= step * 1.2


def test_the_jitter_is_the_one_draw_of_the_random_source() -> None:
    draw = random.Random(11).uniform(0.8, 1.2)
    outcome = judge(UNAVAILABLE, delivery(2), seed=11)
    assert outcome.next_attempt_at == NOW + timedelta(seconds=300.0 * draw)


def test_a_retry_after_is_waited_for_up_to_its_cap() -> None:
    limited = SendResult(succeeded=False, latency_ms=3, status_code=429, retry_after_s=120)
    moment = retry_at(1, limited, policy=POLICY, now=NOW, rng=random.Random(1))
    assert moment == NOW + timedelta(seconds=120)
    shorter = SendResult(succeeded=False, latency_ms=3, status_code=429, retry_after_s=1)
    assert retry_at(2, shorter, policy=POLICY, now=NOW, rng=random.Random(1)) > NOW + timedelta(
        seconds=240
    ), "never before the schedule's own step"
    for_ever = SendResult(succeeded=False, latency_ms=3, status_code=429, retry_after_s=10**9)
    assert retry_at(1, for_ever, policy=POLICY, now=NOW, rng=random.Random(1)) == NOW + timedelta(
        seconds=3_600
    )


def test_after_the_last_retry_the_delivery_is_exhausted() -> None:
    last = delivery(len(POLICY.schedule_s) + 1)
    outcome = judge(UNAVAILABLE, last)
    assert outcome == Outcome(
        status=DeliveryStatus.exhausted,
        error="HTTP 503",
        reason=FinalReason.retries_exhausted,
    )
    nameless = SendResult(succeeded=False, latency_ms=3)
    assert judge(nameless, last).error == "failed"


def test_a_permanent_refusal_fails_at_once() -> None:
    outcome = judge(MAILBOX_UNAVAILABLE, delivery(1, subscription_id=None))
    assert outcome == Outcome(
        status=DeliveryStatus.failed,
        error="SMTP 550: no such user",
        reason=FinalReason.permanent_failure,
    )
    nameless = SendResult(succeeded=False, latency_ms=3, permanent=True)
    assert judge(nameless, delivery(1)).error == "refused"


def test_410_disables_the_subscriptions_endpoint() -> None:
    assert judge(GONE, delivery(1)) == Outcome(
        status=DeliveryStatus.failed,
        error="410 Gone: endpoint disabled",
        reason=FinalReason.endpoint_disabled,
        disable_endpoint=True,
    )
    without_endpoint = judge(GONE, delivery(1, subscription_id=None))
    assert (without_endpoint.reason, without_endpoint.disable_endpoint) == (
        FinalReason.permanent_failure,
        False,
    )


@pytest.mark.parametrize(
    ("attempt", "severity", "warned", "warning"),
    [
        (1, "Extreme", False, None),
        (2, "Extreme", False, OperatorWarning.extreme_failing),
        (3, "Extreme", False, OperatorWarning.extreme_failing),
        (3, "Extreme", True, None),
        (3, "Severe", False, None),
        (3, None, False, None),
    ],
)
def test_operators_hear_once_that_an_extreme_alert_keeps_failing(
    attempt: int, severity: str | None, warned: bool, warning: OperatorWarning | None
) -> None:
    outcome = judge(UNAVAILABLE, delivery(attempt, severity=severity, warned=warned))
    assert outcome.status is DeliveryStatus.retrying
    assert outcome.warning is warning


@pytest.mark.parametrize("warned", [False, True])
@pytest.mark.parametrize("result", [UNAVAILABLE, GONE, MAILBOX_UNAVAILABLE])
def test_operators_hear_every_time_an_extreme_alert_is_given_up_on(
    result: SendResult, warned: bool
) -> None:
    extreme = delivery(len(POLICY.schedule_s) + 1, severity="Extreme", warned=warned)
    assert judge(result, extreme).warning is OperatorWarning.extreme_undeliverable
    severe = delivery(len(POLICY.schedule_s) + 1, severity="Severe", warned=warned)
    assert judge(result, severe).warning is None


def test_the_policy_is_read_from_the_settings() -> None:
    settings = NotificationsSettings(
        delivery_retry_schedule_s=[1.0, 2.0],
        delivery_retry_jitter=0.1,
        retry_after_max_s=60,
        operator_warning_after_failures=4,
    )
    assert RetryPolicy.of(settings) == RetryPolicy(
        schedule_s=(1.0, 2.0), jitter=0.1, retry_after_max_s=60, warn_after_failures=4
    )
