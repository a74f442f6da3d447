"""Consumers of the notifications service: they plan deliveries, the dispatcher sends them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from bali_common.events import CloudEvent
from bali_common.events.activities import ActivityEvent
from bali_common.events.alerts import AlertEvent
from bali_common.events.members import MemberRegistered, MemberSnapshot, MemberUpdated
from bali_common.events.notifications import Channel
from bali_common.messaging.handlers import EventHandlers
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_notifications import directory, planning
from bali_notifications.channels import ChannelSender
from bali_notifications.hub import Handover, NotificationHub
from bali_notifications.routing_cache import RoutingCache

#: The consumer group planning deliveries from member, alert and activity events.
PLANNING_GROUP = "notifications.planning"


def notification_handlers(
    *,
    hub: NotificationHub,
    senders: Mapping[Channel, ChannelSender],
    catch_up_window: timedelta,
    cache: RoutingCache,
) -> EventHandlers:
    """The deliveries a handler plans are claimed in its transaction and handed to the
    dispatcher running in this process through `hub` once it commits (with none running,
    they are left for a polling one, which is woken). Planning reads the directory and the
    subscriptions through `cache`; a member event invalidates it before anything else."""
    handlers = EventHandlers()

    def planned(session: AsyncSession, handover: Handover | None, before: int, added: int) -> None:
        """Rows planned but not handed over (no dispatcher runs here, digest rows, a row left
        unclaimed) wake a dispatcher to poll once the transaction commits."""
        handed = len(handover.jobs) - before if handover is not None else 0
        if added > handed:
            hub.wake_after_commit(session)

    @handlers.on(MemberRegistered, MemberUpdated)
    async def apply_member(
        session: AsyncSession, _event: CloudEvent, member: MemberSnapshot
    ) -> None:
        """The directory routing rules read. A member's newer state may name people an open
        alert never reached (the alert came first): their deliveries are planned here too."""
        # Before the change: nothing plans from the old directory from here on.
        cache.invalidate_with(session)
        if not await directory.apply_snapshot(session=session, snapshot=member):
            return
        handover = hub.handover(session)
        before = len(handover.jobs) if handover is not None else 0
        added = await planning.plan_missed_alerts(
            session=session, member_id=member.member_id, window=catch_up_window, handover=handover
        )
        planned(session, handover, before, added)

    @handlers.on(AlertEvent)
    async def plan_for_alert(session: AsyncSession, event: CloudEvent, alert: AlertEvent) -> None:
        handover = hub.handover(session)
        before = len(handover.jobs) if handover is not None else 0
        added = await planning.plan_for_alert(
            session=session,
            event=event,
            payload=alert,
            senders=senders,
            cache=cache,
            handover=handover,
        )
        planned(session, handover, before, added)

    @handlers.on(ActivityEvent)
    async def plan_for_activity(
        session: AsyncSession, event: CloudEvent, activity: ActivityEvent
    ) -> None:
        handover = hub.handover(session)
        before = len(handover.jobs) if handover is not None else 0
        added = await planning.plan_for_activity(
            session=session,
            event=event,
            payload=activity,
            senders=senders,
            cache=cache,
            handover=handover,
        )
        planned(session, handover, before, added)

    return handlers
