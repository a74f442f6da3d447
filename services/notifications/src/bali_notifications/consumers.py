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
from bali_notifications.hub import NotificationHub

#: The consumer group planning deliveries from member, alert and activity events.
PLANNING_GROUP = "notifications.planning"


def notification_handlers(
    *,
    hub: NotificationHub,
    senders: Mapping[Channel, ChannelSender],
    catch_up_window: timedelta,
) -> EventHandlers:
    """Every handler wakes the dispatcher through `hub` once the deliveries it planned commit."""
    handlers = EventHandlers()

    @handlers.on(MemberRegistered, MemberUpdated)
    async def apply_member(
        session: AsyncSession, _event: CloudEvent, member: MemberSnapshot
    ) -> None:
        """The directory routing rules read. A member's newer state may name people an open
        alert never reached (the alert came first): their deliveries are planned here too."""
        if not await directory.apply_snapshot(session=session, snapshot=member):
            return
        if await planning.plan_missed_alerts(
            session=session, member_id=member.member_id, window=catch_up_window
        ):
            hub.wake_after_commit(session)

    @handlers.on(AlertEvent)
    async def plan_for_alert(session: AsyncSession, event: CloudEvent, alert: AlertEvent) -> None:
        if await planning.plan_for_alert(
            session=session, event=event, payload=alert, senders=senders
        ):
            hub.wake_after_commit(session)

    @handlers.on(ActivityEvent)
    async def plan_for_activity(
        session: AsyncSession, event: CloudEvent, activity: ActivityEvent
    ) -> None:
        if await planning.plan_for_activity(
            session=session, event=event, payload=activity, senders=senders
        ):
            hub.wake_after_commit(session)

    return handlers
