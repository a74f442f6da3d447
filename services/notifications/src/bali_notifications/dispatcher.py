"""The dispatcher: claims due deliveries, sends them outside any transaction, records every attempt.

Consumers only plan deliveries (rows with a due time); this loop does the
network I/O. A claim is a lease (FOR UPDATE SKIP LOCKED on PostgreSQL, so
replicas share the work); the send happens with no database connection held;
the attempt, the new status and the notification.* events then commit in one
transaction. The schedule is driven by the `now` handed in, so tests drive the
clock instead of sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bali_common.db import SessionFactory, as_utc, transaction, utcnow
from bali_common.events.alerts import Severity
from bali_common.events.notifications import (
    Channel,
    DeliveryEvent,
    NotificationDelivered,
    NotificationExhausted,
    NotificationFailed,
    NotificationSent,
)
from bali_common.messaging.outbox import stage_event
from sqlalchemy import or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_notifications.channels import ChannelSender, Notification, SendResult
from bali_notifications.deliveries.models import (
    DUE_STATUSES,
    Delivery,
    DeliveryAttempt,
    DeliveryJob,
    DeliveryReason,
    DeliveryStatus,
    SourceEvent,
)
from bali_notifications.hub import NotificationHub
from bali_notifications.metrics import NotificationMetrics
from bali_notifications.rendering import DIGEST_EVENT_TYPE, render_delivery
from bali_notifications.settings import NotificationsSettings
from bali_notifications.subscriptions.models import Subscription

log = logging.getLogger(__name__)

_EXTREME = Severity.extreme.value


@dataclass(frozen=True)
class _Skipped:
    """A delivery that cannot be attempted at all (its endpoint is gone or disabled)."""

    error: str
    reason: str


class Dispatcher:
    def __init__(
        self,
        *,
        settings: NotificationsSettings,
        sessions: SessionFactory,
        hub: NotificationHub,
        metrics: NotificationMetrics,
        senders: Mapping[Channel, ChannelSender],
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._hub = hub
        self._metrics = metrics
        self._senders = senders
        self._rng = rng or random.Random()
        self._lease = timedelta(
            seconds=max(
                settings.dispatch_claim_seconds,
                settings.webhook_timeout_s + 30,
                settings.smtp_timeout_s + 30,
            )
        )
        self.dispatcher_id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"

    # --- loops -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep sending what is due; wakes on new plans, polls for retries coming due."""
        in_flight: set[asyncio.Task[None]] = set()
        try:
            if not self._settings.dispatch_in_background:
                await asyncio.Event().wait()
            while True:
                free = self._settings.dispatch_concurrency - len(in_flight)
                jobs: list[DeliveryJob] = []
                if free > 0:
                    try:
                        jobs = await self._claim(
                            now=utcnow(), limit=min(free, self._settings.dispatch_batch_size)
                        )
                    except Exception:
                        log.exception("claiming due deliveries failed; retrying")
                for job in jobs:
                    task = asyncio.create_task(self._process(job, now=None))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                if free <= 0:
                    # Every slot is busy (slow receivers): claim more as soon as one frees up.
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                elif not jobs:
                    await self._hub.wait_for_work(self._settings.dispatch_poll_interval_s)
        finally:
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
            await self.aclose()

    async def aclose(self) -> None:
        """Close what the senders keep open (pooled webhook connections)."""
        for sender in self._senders.values():
            await sender.aclose()

    async def run_digests(self) -> None:
        if not self._settings.dispatch_in_background:
            return
        while True:
            try:
                await self.send_digests(now=utcnow())
            except Exception:
                log.exception("daily digest run failed; retrying at the next interval")
            await asyncio.sleep(self._settings.digest_check_interval_s)

    async def dispatch_due(self, *, now: datetime) -> int:
        """Send everything due at `now` and wait for the outcomes; returns how many were tried."""
        total = 0
        while True:
            jobs = await self._claim(now=now, limit=self._settings.dispatch_batch_size)
            if not jobs:
                return total
            await asyncio.gather(*(self._process(job, now=now) for job in jobs))
            total += len(jobs)

    # --- claim -----------------------------------------------------------------------------

    async def _claim(self, *, now: datetime, limit: int) -> list[DeliveryJob]:
        async with transaction(self._sessions) as session:
            ids = list(
                (
                    await session.exec(
                        select(Delivery.id)
                        .where(col(Delivery.status).in_(DUE_STATUSES))
                        .where(col(Delivery.next_attempt_at) <= now)
                        .where(
                            or_(
                                col(Delivery.claimed_until).is_(None),
                                col(Delivery.claimed_until) < now,
                            )
                        )
                        .order_by(col(Delivery.next_attempt_at), col(Delivery.id))
                        .limit(limit)
                        .with_for_update(skip_locked=True)
                    )
                ).all()
            )
            if not ids:
                return []
            await session.exec(
                update(Delivery)
                .where(col(Delivery.id).in_(ids))
                .values(claimed_by=self.dispatcher_id, claimed_until=now + self._lease)
            )
            deliveries = list(
                (await session.exec(select(Delivery).where(col(Delivery.id).in_(ids)))).all()
            )
            sources = {
                source.event_id: source
                for source in await session.exec(
                    select(SourceEvent).where(
                        col(SourceEvent.event_id).in_({d.source_event_id for d in deliveries})
                    )
                )
            }
            subscription_ids = {d.subscription_id for d in deliveries if d.subscription_id}
            subscriptions = {
                subscription.id: subscription
                for subscription in await session.exec(
                    select(Subscription).where(col(Subscription.id).in_(subscription_ids))
                )
            }
        return [
            DeliveryJob(
                delivery=delivery,
                source=sources[delivery.source_event_id],
                subscription=subscriptions.get(delivery.subscription_id or ""),
            )
            for delivery in sorted(deliveries, key=lambda d: ids.index(d.id))
        ]

    # --- send ------------------------------------------------------------------------------

    async def _process(self, job: DeliveryJob, *, now: datetime | None) -> None:
        try:
            result = await self._send(job, now or utcnow())
        except Exception as error:
            # A rendering or channel bug counts as a failed attempt, so retries still end.
            log.exception("sending delivery %s failed unexpectedly", job.delivery.id)
            result = SendResult(
                succeeded=False, latency_ms=0, error=f"internal error: {type(error).__name__}"
            )
        try:
            # The background loop records at the real time the attempt ended.
            await self._record(job, result, now or utcnow())
        except Exception:
            log.exception(
                "delivery %s could not be recorded; its claim will expire", job.delivery.id
            )

    async def _send(self, job: DeliveryJob, now: datetime) -> SendResult | _Skipped:
        delivery = job.delivery
        subscription = job.subscription
        if delivery.subscription_id is not None:
            if subscription is None or subscription.deleted_at is not None:
                return _Skipped("subscription deleted", "endpoint_disabled")
            if not subscription.enabled:
                return _Skipped(
                    f"endpoint disabled: {subscription.disabled_reason}", "endpoint_disabled"
                )
        rendered = render_delivery(
            delivery=delivery, source=job.source, settings=self._settings, now=now
        )
        sender = self._senders[Channel(delivery.channel)]
        return await sender.send(Notification(job=job, rendered=rendered), now=now)

    # --- record ----------------------------------------------------------------------------

    async def _record(self, job: DeliveryJob, result: SendResult | _Skipped, now: datetime) -> None:
        channel = job.delivery.channel
        async with transaction(self._sessions) as session:
            delivery = await session.get(Delivery, job.delivery.id, with_for_update=True)
            if delivery is None or delivery.status not in DUE_STATUSES:
                return
            delivery.claimed_by = None
            delivery.claimed_until = None
            delivery.updated_at = now
            if isinstance(result, _Skipped):
                delivery.status = DeliveryStatus.failed.value
                delivery.last_error = result.error
                delivery.next_attempt_at = None
                # The subscriber itself removed or disabled the endpoint: nothing to warn about.
                self._stage(
                    session,
                    NotificationExhausted,
                    delivery,
                    now,
                    error=result.error,
                    reason=result.reason,
                )
                self._metrics.finished.labels(channel, delivery.status).inc()
                session.add(delivery)
                return
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
            if result.succeeded:
                delivery.status = DeliveryStatus.delivered.value
                delivery.delivered_at = now
                delivery.next_attempt_at = None
                session.add_all(result.stored)
                self._stage(
                    session, NotificationDelivered, delivery, now, latency_ms=result.latency_ms
                )
            elif result.permanent:
                await self._fail_for_good(session, job, delivery, result, now)
            elif delivery.attempts_in_round > len(self._settings.delivery_retry_schedule_s):
                self._give_up(
                    session,
                    delivery,
                    result,
                    now,
                    status=DeliveryStatus.exhausted,
                    reason="retries_exhausted",
                    error=result.error or "failed",
                )
            else:
                delivery.status = DeliveryStatus.retrying.value
                delivery.next_attempt_at = self.next_attempt_at(delivery, result, now)
                warn = False
                if delivery.attempts_in_round >= self._settings.operator_warning_after_failures:
                    warn = not delivery.operator_warning and self._warn_if_extreme(
                        delivery, "extreme_failing"
                    )
                self._stage(
                    session,
                    NotificationFailed,
                    delivery,
                    now,
                    error=result.error or "failed",
                    next_attempt_at=delivery.next_attempt_at,
                    status_code=result.status_code,
                    operator_warning=warn,
                )
            session.add(delivery)
            outcome = "delivered" if result.succeeded else "failed"
            self._metrics.attempts.labels(channel, outcome).inc()
            self._metrics.attempt_latency.labels(channel).observe(result.latency_ms / 1000)
            if delivery.status != DeliveryStatus.retrying.value:
                self._metrics.finished.labels(channel, delivery.status).inc()
        if result.succeeded and result.on_committed is not None:
            result.on_committed()

    async def _fail_for_good(
        self,
        session: AsyncSession,
        job: DeliveryJob,
        delivery: Delivery,
        result: SendResult,
        now: datetime,
    ) -> None:
        reason = "permanent_failure"
        if result.disable_endpoint and job.subscription is not None:
            reason = "endpoint_disabled"
            subscription = await session.get(
                Subscription, job.subscription.id, with_for_update=True
            )
            if subscription is not None and subscription.enabled:
                subscription.enabled = False
                subscription.disabled_at = now
                subscription.disabled_reason = result.error
                subscription.version += 1
                subscription.updated_at = now
                session.add(subscription)
                self._metrics.endpoints_disabled.inc()
        self._give_up(
            session,
            delivery,
            result,
            now,
            status=DeliveryStatus.failed,
            reason=reason,
            error=result.error or "refused",
        )

    def _give_up(
        self,
        session: AsyncSession,
        delivery: Delivery,
        result: SendResult,
        now: datetime,
        *,
        status: DeliveryStatus,
        reason: str,
        error: str,
    ) -> None:
        """No more attempts: the final status, and operators warned if an Extreme alert is lost."""
        delivery.status = status.value
        delivery.next_attempt_at = None
        warn = self._warn_if_extreme(delivery, "extreme_undeliverable")
        self._stage(
            session,
            NotificationExhausted,
            delivery,
            now,
            error=error,
            reason=reason,
            status_code=result.status_code,
            operator_warning=warn,
        )

    def next_attempt_at(self, delivery: Delivery, result: SendResult, now: datetime) -> datetime:
        """Exponential schedule from settings, +/- jitter; never before a 429's Retry-After."""
        schedule = self._settings.delivery_retry_schedule_s
        base = schedule[min(delivery.attempts_in_round, len(schedule)) - 1]
        jitter = self._settings.delivery_retry_jitter
        delay = base * self._rng.uniform(1 - jitter, 1 + jitter)
        if result.retry_after_s is not None:
            delay = max(delay, min(result.retry_after_s, self._settings.retry_after_max_s))
        return now + timedelta(seconds=delay)

    def _warn_if_extreme(self, delivery: Delivery, reason: str) -> bool:
        """Operators must know when an Extreme alert is not getting through."""
        if delivery.severity != _EXTREME:
            return False
        delivery.operator_warning = True
        self._metrics.operator_warnings.labels(reason).inc()
        log.warning(
            "OPERATOR WARNING (%s): delivery %s of Extreme alert %s to %s via %s: %s",
            reason,
            delivery.id,
            delivery.alert_id,
            delivery.recipient,
            delivery.channel,
            delivery.last_error,
        )
        return True

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

    # --- digests ---------------------------------------------------------------------------

    async def send_digests(self, *, now: datetime) -> int:
        """Bundle the activity notifications queued before today (UTC), one per subscription."""
        cutoff = now.replace(hour=0, minute=0, second=0, microsecond=0)
        day = (cutoff - timedelta(days=1)).date().isoformat()
        created = 0
        async with transaction(self._sessions) as session:
            queued = list(
                (
                    await session.exec(
                        select(Delivery)
                        .where(Delivery.status == DeliveryStatus.queued_for_digest.value)
                        .where(col(Delivery.created_at) < cutoff)
                        .order_by(col(Delivery.created_at), col(Delivery.id))
                        .with_for_update(skip_locked=True)
                    )
                ).all()
            )
            groups: dict[str, list[Delivery]] = defaultdict(list)
            for delivery in queued:
                groups[delivery.subscription_id or ""].append(delivery)
            for subscription_id, items in groups.items():
                subscription = await session.get(Subscription, subscription_id)
                created += await self._bundle(session, subscription, items, now=now, day=day)
            if created:
                self._hub.wake_after_commit(session)
        return created

    async def _bundle(
        self,
        session: AsyncSession,
        subscription: Subscription | None,
        items: list[Delivery],
        *,
        now: datetime,
        day: str,
    ) -> int:
        if subscription is None or subscription.deleted_at is not None:
            for item in items:
                item.status = DeliveryStatus.failed.value
                item.last_error = "subscription deleted before its digest was sent"
                item.updated_at = now
                session.add(item)
            return 0
        sources = {
            source.event_id: source
            for source in await session.exec(
                select(SourceEvent).where(
                    col(SourceEvent.event_id).in_([item.source_event_id for item in items])
                )
            )
        }
        digest_event_id = f"digest:{subscription.id}:{day}:{items[0].id[:8]}"
        session.add(
            SourceEvent(
                event_id=digest_event_id,
                event_type=DIGEST_EVENT_TYPE,
                subject=subscription.id,
                occurred_at=now,
                data={
                    "subscription_id": subscription.id,
                    "day": day,
                    "items": [
                        {
                            "event_id": item.source_event_id,
                            "event_type": item.event_type,
                            "occurred_at": as_utc(
                                sources[item.source_event_id].occurred_at
                            ).isoformat(),
                            "activity": sources[item.source_event_id].data.get("activity", {}),
                        }
                        for item in items
                    ],
                },
            )
        )
        digest = Delivery(
            source_event_id=digest_event_id,
            event_type=DIGEST_EVENT_TYPE,
            channel=subscription.channel,
            recipient=items[0].recipient,
            member_id=subscription.member_id,
            subscription_id=subscription.id,
            reason=DeliveryReason.subscription.value,
            status=DeliveryStatus.pending.value,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
        session.add(digest)
        for item in items:
            item.status = DeliveryStatus.digested.value
            item.digest_delivery_id = digest.id
            item.updated_at = now
            session.add(item)
        return 1
