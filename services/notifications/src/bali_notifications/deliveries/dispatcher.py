"""The dispatcher: claims due deliveries and hands them to their channel; `recording` writes
what each attempt came to."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import socket
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bali_common.db import SessionFactory, as_utc, transaction, utcnow
from bali_common.events.notifications import (
    Channel,
)
from sqlalchemy import or_, update
from sqlmodel import col, select

from bali_notifications import directory, routing
from bali_notifications.channels import ChannelSender, Notification, SendResult
from bali_notifications.deliveries.models import (
    DUE_STATUSES,
    Delivery,
    DeliveryJob,
    SourceEvent,
)
from bali_notifications.deliveries.outcomes import FinalReason, RetryPolicy
from bali_notifications.deliveries.recording import AttemptRecorder, Skipped
from bali_notifications.hub import NotificationHub
from bali_notifications.metrics import NotificationMetrics
from bali_notifications.rendering import render_delivery
from bali_notifications.settings import NotificationsSettings
from bali_notifications.subscriptions.models import Subscription

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Lane:
    """Sends of some channels, at most `limit` at once: email has a lane of its own, so a slow
    SMTP server fills only that one and never holds up a webhook or an inbox item."""

    limit: int
    email: bool
    in_flight: set[asyncio.Task[None]] = field(default_factory=set)
    #: Jobs held (claimed) here, waiting for one of the lane's sends to finish.
    waiting: deque[DeliveryJob] = field(default_factory=deque)
    #: The poll found no room: the next send to finish wakes it.
    full: bool = False

    def room(self) -> int:
        return self.limit - len(self.in_flight) - len(self.waiting)


class Dispatcher:
    """Does the network I/O of deliveries that consumers only planned (rows with a due time).

    A claim is a lease (FOR UPDATE SKIP LOCKED on PostgreSQL, so replicas share
    the work); the send happens with no database connection held; the attempt,
    the new status and the notification.* events then commit in one transaction.
    The schedule is driven by the `now` handed in, so tests drive the clock
    instead of sleeping.

    What a consumer of this process plans reaches the running dispatcher without a poll:
    the rows are claimed for it in the planning transaction and handed over in memory once
    that commits (`hand_over`). Polling stays for everything else: retries coming due,
    rows planned by other replicas or while no dispatcher ran, handovers lost to a crash
    (their lease runs out, or the next start takes them back).
    """

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
        self._recorder = AttemptRecorder(
            sessions=sessions, metrics=metrics, policy=RetryPolicy.of(settings), rng=rng
        )
        self._lease = timedelta(
            seconds=max(
                settings.dispatch_claim_seconds,
                settings.webhook_timeout_s + 30,
                settings.smtp_timeout_s + 30,
            )
        )
        # Stable across restarts (host and service, never the pid): a restarted dispatcher
        # recognises the claims of its previous life and takes them back at once.
        self.dispatcher_id = f"{settings.relay_id or socket.gethostname()}:notifications:dispatcher"
        # In-flight sends end within their channel's timeout; a stop waits that long for them.
        self._send_bound = max(settings.webhook_timeout_s, settings.smtp_timeout_s) + 2.0
        # Webhooks and inbox first: their lane is claimed and started before email's.
        self._fast = _Lane(limit=settings.dispatch_concurrency, email=False)
        self._email = _Lane(limit=settings.dispatch_email_concurrency, email=True)
        self._lanes = (self._fast, self._email)
        #: Deliveries under way or waiting here: one claimed again (say by this dispatcher's
        #: own poll once a lease ran out while it waited) is never sent twice.
        self._held: set[str] = set()
        self._accepting = False

    # --- loops -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep sending what is due: takes handovers as they commit, polls for the rest."""
        try:
            if not self._settings.dispatch_in_background:
                await asyncio.Event().wait()
            await self.take_back_own_claims()
            self._accepting = True
            self._hub.attach(self)
            while True:
                if not await self._claim_for_free_slots():
                    await self._hub.wait_for_work(self._settings.dispatch_poll_interval_s)
        finally:
            self._accepting = False
            self._hub.detach(self)
            await self._let_in_flight_finish({t for lane in self._lanes for t in lane.in_flight})
            await self.aclose()

    def lease_until(self) -> datetime:
        """When a claim taken now runs out (planners claim handed-over rows with it)."""
        return utcnow() + self._lease

    def hand_over(self, jobs: Sequence[DeliveryJob]) -> None:
        """Deliveries a consumer planned and claimed for this dispatcher, their transaction
        committed: started at once, webhooks and inbox before email, each lane within its
        concurrency (the rest wait in memory, claimed). Stopping, it takes nothing: the claims
        are taken back at the next start, or their lease runs out and a poll sends them."""
        if not self._accepting:
            return
        for job in sorted(jobs, key=lambda j: j.delivery.channel == Channel.email.value):
            self._take(job)

    async def _claim_for_free_slots(self) -> bool:
        """One poll: due rows claimed for each lane's free slots, webhooks and inbox first.
        True when a lane got all it asked for (more may be due at once)."""
        more = False
        for lane in self._lanes:
            free = min(lane.room(), self._settings.dispatch_batch_size)
            if free <= 0:
                # Every slot is busy (slow receivers): a finished send wakes the loop.
                lane.full = True
                continue
            try:
                jobs = await self._claim(now=utcnow(), limit=free, email=lane.email)
            except Exception:
                log.exception("claiming due deliveries failed; retrying")
                continue
            for job in jobs:
                self._take(job)
            more = more or len(jobs) == free
        return more

    def _lane_of(self, job: DeliveryJob) -> _Lane:
        return self._email if job.delivery.channel == Channel.email.value else self._fast

    def _take(self, job: DeliveryJob) -> None:
        delivery_id = job.delivery.id
        if delivery_id in self._held:
            return  # already under way or waiting here
        self._held.add(delivery_id)
        lane = self._lane_of(job)
        if len(lane.in_flight) < lane.limit:
            self._start(lane, job, waited=False)
        else:
            lane.waiting.append(job)

    def _start(self, lane: _Lane, job: DeliveryJob, *, waited: bool) -> None:
        task = asyncio.create_task(self._process_held(job, waited=waited))
        lane.in_flight.add(task)
        task.add_done_callback(functools.partial(self._finished, lane, job.delivery.id))

    def _finished(self, lane: _Lane, delivery_id: str, task: asyncio.Task[None]) -> None:
        lane.in_flight.discard(task)
        self._held.discard(delivery_id)
        if lane.waiting and self._accepting:
            self._start(lane, lane.waiting.popleft(), waited=True)
        elif lane.full:
            lane.full = False
            self._hub.wake_dispatcher()

    async def _process_held(self, job: DeliveryJob, *, waited: bool) -> None:
        if waited and not await self._lease_holds(job):
            return
        await self._process(job, now=None)

    async def _lease_holds(self, job: DeliveryJob) -> bool:
        """A job that waited for a slot may have spent much of its lease: past half of it, the
        lease is extended first, and the job dropped if another dispatcher took it meanwhile."""
        claimed_until = job.delivery.claimed_until
        now = utcnow()
        if claimed_until is not None and as_utc(claimed_until) - now > self._lease / 2:
            return True
        try:
            async with transaction(self._sessions) as session:
                extended = await session.exec(
                    update(Delivery)
                    .where(col(Delivery.id) == job.delivery.id)
                    .where(col(Delivery.claimed_by) == self.dispatcher_id)
                    .where(col(Delivery.status).in_(DUE_STATUSES))
                    .values(claimed_until=now + self._lease)
                )
        except Exception:
            log.exception("extending the claim of delivery %s failed", job.delivery.id)
            return False
        return bool(extended.rowcount)

    async def take_back_own_claims(self) -> int:
        """What this dispatcher's previous life claimed and never recorded is due again now,
        not when the lease runs out. (A send the receiver accepted just before a crash goes
        again: at least once, the webhook-id lets receivers drop the repeat.)"""
        async with transaction(self._sessions) as session:
            taken = await session.exec(
                update(Delivery)
                .where(col(Delivery.claimed_by) == self.dispatcher_id)
                .where(col(Delivery.status).in_(DUE_STATUSES))
                .values(claimed_by=None, claimed_until=None)
            )
        count = int(taken.rowcount or 0)
        if count:
            log.warning("took back %d deliveries claimed before a restart", count)
        return count

    async def _let_in_flight_finish(self, in_flight: set[asyncio.Task[None]]) -> None:
        """A stop lets sends under way record their outcome: cancelled after the receiver
        accepted it, a send would go again once its claim expired."""
        if not in_flight:
            return
        log.info("waiting for %d sends under way to record their outcome", len(in_flight))
        _, unfinished = await asyncio.wait(set(in_flight), timeout=self._send_bound)
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)

    async def aclose(self) -> None:
        """Close what the senders keep open (pooled webhook connections)."""
        for sender in self._senders.values():
            await sender.aclose()

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

    async def _claim(
        self, *, now: datetime, limit: int, email: bool | None = None
    ) -> list[DeliveryJob]:
        """Lease up to `limit` due rows: of the email channel only, of the others only, or
        (None) of any channel."""
        query = (
            select(Delivery.id)
            .where(col(Delivery.status).in_(DUE_STATUSES))
            .where(col(Delivery.next_attempt_at) <= now)
            .where(
                or_(
                    col(Delivery.claimed_until).is_(None),
                    col(Delivery.claimed_until) < now,
                )
            )
        )
        if email is not None:
            query = query.where(
                (col(Delivery.channel) == Channel.email.value)
                if email
                else (col(Delivery.channel) != Channel.email.value)
            )
        async with transaction(self._sessions) as session:
            ids = list(
                (
                    await session.exec(
                        query.order_by(col(Delivery.next_attempt_at), col(Delivery.id))
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
            co_chairs = frozenset(await directory.co_chair_ids(session=session))
        return [
            DeliveryJob(
                delivery=delivery,
                source=sources[delivery.source_event_id],
                subscription=subscriptions.get(delivery.subscription_id or ""),
                co_chairs=co_chairs,
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
            await self._recorder.record(job, result, now or utcnow())
        except Exception:
            log.exception(
                "delivery %s could not be recorded; its claim will expire", job.delivery.id
            )

    async def _send(self, job: DeliveryJob, now: datetime) -> SendResult | Skipped:
        delivery = job.delivery
        subscription = job.subscription
        if delivery.subscription_id is not None:
            if subscription is None or subscription.deleted_at is not None:
                return Skipped("subscription deleted", FinalReason.endpoint_disabled)
            if not subscription.enabled:
                return Skipped(
                    f"endpoint disabled: {subscription.disabled_reason}",
                    FinalReason.endpoint_disabled,
                )
        if not routing.may_send(job):
            return Skipped(
                "not sent: the recipient may no longer see this alert", FinalReason.not_permitted
            )
        rendered = render_delivery(
            delivery=delivery, source=job.source, settings=self._settings, now=now
        )
        sender = self._senders[Channel(delivery.channel)]
        return await sender.send(Notification(job=job, rendered=rendered), now=now)
