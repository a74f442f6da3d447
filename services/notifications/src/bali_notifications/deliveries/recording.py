"""What a delivery attempt came to, written in one transaction: the attempt, the delivery's
new state, the endpoint disabled or the operators warned, and the `notification.*` event.

Apart from the dispatcher, which only schedules: `outcome_of` decides, this applies.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bali_common.db import SessionFactory, transaction
from bali_common.events.notifications import (
    Channel,
    DeliveryEvent,
    NotificationDelivered,
    NotificationExhausted,
    NotificationFailed,
    NotificationSent,
)
from bali_common.messaging.outbox import stage_event
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_notifications.channels import SendResult
from bali_notifications.deliveries.models import (
    DUE_STATUSES,
    Delivery,
    DeliveryAttempt,
    DeliveryJob,
    DeliveryStatus,
)
from bali_notifications.deliveries.outcomes import (
    FinalReason,
    OperatorWarning,
    Outcome,
    RetryPolicy,
    outcome_of,
)
from bali_notifications.metrics import NotificationMetrics
from bali_notifications.subscriptions.models import Subscription

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Skipped:
    """A delivery that is not attempted at all: its endpoint is gone or disabled, or the
    visibility rule no longer lets its recipient see the alert."""

    error: str
    reason: FinalReason


class AttemptRecorder:
    """Records attempts for a dispatcher; the jitter of retries comes from `rng`."""

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        metrics: NotificationMetrics,
        policy: RetryPolicy,
        rng: random.Random | None = None,
    ) -> None:
        self._sessions = sessions
        self._metrics = metrics
        self._policy = policy
        self._rng = rng or random.Random()

    async def record(self, job: DeliveryJob, result: SendResult | Skipped, now: datetime) -> None:
        async with transaction(self._sessions) as session:
            delivery = await session.get(Delivery, job.delivery.id, with_for_update=True)
            if delivery is None or delivery.status not in DUE_STATUSES:
                return
            delivery.claimed_by = None
            delivery.claimed_until = None
            delivery.updated_at = now
            if isinstance(result, Skipped):
                self._skip(session, delivery, result, now)
                return
            self._attempt(session, delivery, result, now)
            outcome = outcome_of(
                result, delivery=delivery, policy=self._policy, now=now, rng=self._rng
            )
            await self._apply(session, delivery, result, outcome, now)
        if outcome.status is DeliveryStatus.delivered and result.on_committed is not None:
            result.on_committed()

    def _skip(
        self, session: AsyncSession, delivery: Delivery, skipped: Skipped, now: datetime
    ) -> None:
        """No attempt: the endpoint was removed or disabled, or may not be sent the alert; a
        decision rather than a failure, so no warning."""
        delivery.status = DeliveryStatus.failed.value
        delivery.last_error = skipped.error
        delivery.next_attempt_at = None
        self._stage(
            session,
            NotificationExhausted,
            delivery,
            now,
            error=skipped.error,
            reason=skipped.reason,
        )
        self._metrics.finished.labels(delivery.channel, delivery.status).inc()
        session.add(delivery)

    def _attempt(
        self, session: AsyncSession, delivery: Delivery, result: SendResult, now: datetime
    ) -> None:
        delivery.attempt_count += 1
        delivery.attempts_in_round += 1
        delivery.last_status_code = result.status_code
        delivery.last_error = result.error
        session.add(
            DeliveryAttempt(
                delivery_id=delivery.id,
                number=delivery.attempt_count,
                attempted_at=now,
                succeeded=result.succeeded,
                status_code=result.status_code,
                latency_ms=result.latency_ms,
                error=result.error,
            )
        )
        self._stage(session, NotificationSent, delivery, now)
        attempt_outcome = "delivered" if result.succeeded else "failed"
        self._metrics.attempts.labels(delivery.channel, attempt_outcome).inc()
        self._metrics.attempt_latency.labels(delivery.channel).observe(result.latency_ms / 1000)

    async def _apply(
        self,
        session: AsyncSession,
        delivery: Delivery,
        result: SendResult,
        outcome: Outcome,
        now: datetime,
    ) -> None:
        """Write the outcome: the status, the endpoint, the warning and the event that says so."""
        delivery.status = outcome.status.value
        delivery.next_attempt_at = outcome.next_attempt_at
        if outcome.disable_endpoint:
            await self._disable_endpoint(session, delivery, reason=result.error, now=now)
        if outcome.warning is not None:
            self._warn_operators(delivery, outcome.warning)
        if outcome.status is DeliveryStatus.delivered:
            delivery.delivered_at = now
            session.add_all(result.stored)
            self._stage(session, NotificationDelivered, delivery, now, latency_ms=result.latency_ms)
        elif outcome.status is DeliveryStatus.retrying:
            self._stage(
                session,
                NotificationFailed,
                delivery,
                now,
                error=outcome.error,
                next_attempt_at=outcome.next_attempt_at,
                status_code=result.status_code,
                operator_warning=outcome.warning is not None,
            )
        else:
            self._stage(
                session,
                NotificationExhausted,
                delivery,
                now,
                error=outcome.error,
                reason=outcome.reason,
                status_code=result.status_code,
                operator_warning=outcome.warning is not None,
            )
        if outcome.status is not DeliveryStatus.retrying:
            self._metrics.finished.labels(delivery.channel, delivery.status).inc()
        session.add(delivery)

    async def _disable_endpoint(
        self, session: AsyncSession, delivery: Delivery, *, reason: str | None, now: datetime
    ) -> None:
        subscription = await session.get(
            Subscription, delivery.subscription_id, with_for_update=True
        )
        if subscription is not None and subscription.enabled:
            subscription.enabled = False
            subscription.disabled_at = now
            subscription.disabled_reason = reason
            subscription.version += 1
            subscription.updated_at = now
            session.add(subscription)
            self._metrics.endpoints_disabled.inc()

    def _warn_operators(self, delivery: Delivery, warning: OperatorWarning) -> None:
        """Operators must know when an Extreme alert is not getting through."""
        delivery.operator_warning = True
        self._metrics.operator_warnings.labels(warning.value).inc()
        log.warning(
            "OPERATOR WARNING (%s): delivery %s of Extreme alert %s to %s via %s: %s",
            warning.value,
            delivery.id,
            delivery.alert_id,
            delivery.recipient,
            delivery.channel,
            delivery.last_error,
        )

    @staticmethod
    def _stage(
        session: AsyncSession,
        kind: type[DeliveryEvent],
        delivery: Delivery,
        now: datetime,
        **extra: Any,
    ) -> None:
        payload = kind(
            delivery_id=delivery.id,
            source_event_id=delivery.source_event_id,
            source_event_type=delivery.event_type,
            channel=Channel(delivery.channel),
            recipient=delivery.recipient,
            member_id=delivery.member_id,
            alert_id=delivery.alert_id,
            severity=delivery.severity,
            attempt=delivery.attempt_count,
            occurred_at=now,
            **extra,
        )
        stage_event(session, payload, subject=delivery.id)
