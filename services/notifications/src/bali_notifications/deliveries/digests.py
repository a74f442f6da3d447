"""Daily digests: the activity notifications queued for a subscription, bundled once a day."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import datetime, timedelta

from bali_common.db import SessionFactory, as_utc, transaction, utcnow
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_notifications.deliveries.models import (
    Delivery,
    DeliveryReason,
    DeliveryStatus,
    SourceEvent,
)
from bali_notifications.hub import NotificationHub
from bali_notifications.rendering import DIGEST_EVENT_TYPE
from bali_notifications.settings import NotificationsSettings
from bali_notifications.subscriptions.models import Subscription

log = logging.getLogger(__name__)


async def run(
    *, sessions: SessionFactory, hub: NotificationHub, settings: NotificationsSettings
) -> None:
    """Bundle what is due at every check, as long as the service runs."""
    if not settings.dispatch_in_background:
        return
    while True:
        try:
            await bundle(sessions=sessions, hub=hub, now=utcnow())
        except Exception:
            log.exception("daily digest run failed; retrying at the next interval")
        await asyncio.sleep(settings.digest_check_interval_s)


async def bundle(*, sessions: SessionFactory, hub: NotificationHub, now: datetime) -> int:
    """Bundle the activity notifications queued before today (UTC), one per subscription."""
    cutoff = now.replace(hour=0, minute=0, second=0, microsecond=0)
    day = (cutoff - timedelta(days=1)).date().isoformat()
    created = 0
    async with transaction(sessions) as session:
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
            created += await _bundle_for(session, subscription, items, now=now, day=day)
        if created:
            hub.wake_after_commit(session)
    return created


async def _bundle_for(
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
