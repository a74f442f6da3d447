"""Consumers of the notifications service: they plan deliveries, the dispatcher sends them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from bali_common.events import REGISTRY, CloudEvent, EventPayload, Stream
from bali_common.events.activities import ActivityEvent
from bali_common.events.alerts import AlertEvent
from bali_common.events.members import MemberSnapshot
from bali_common.messaging.consumer import Handler, Subscription
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_notifications import service
from bali_notifications.hub import NotificationHub


def members_subscription(hub: NotificationHub, *, catch_up_window: timedelta) -> Subscription:
    """The member directory (co-chairs, focal points) that routing rules read.

    A member's newer state may name people an open alert never reached (the alert
    came first); their deliveries are planned in the same transaction.
    """

    async def apply_member(
        session: AsyncSession, _event: CloudEvent, payload: EventPayload
    ) -> None:
        assert isinstance(payload, MemberSnapshot)
        if not await service.apply_member_snapshot(session=session, snapshot=payload):
            return
        if await service.plan_missed_alert_notifications(
            session=session, member_id=payload.member_id, window=catch_up_window
        ):
            hub.wake_after_commit(session)

    return Subscription(
        group="notifications.members",
        streams=[Stream.members],
        handlers=_every_type(Stream.members, MemberSnapshot, apply_member),
    )


def alerts_subscription(hub: NotificationHub) -> Subscription:
    return _planning(
        hub, "notifications.alerts", Stream.alerts, AlertEvent, service.plan_alert_notifications
    )


def activities_subscription(hub: NotificationHub) -> Subscription:
    return _planning(
        hub,
        "notifications.activities",
        Stream.activities,
        ActivityEvent,
        service.plan_activity_notifications,
    )


def _planning(
    hub: NotificationHub,
    group: str,
    stream: Stream,
    family: type[EventPayload],
    plan: Callable[..., Awaitable[int]],
) -> Subscription:
    """Plans deliveries for the family's events; the dispatcher wakes once the plan commits."""

    async def handle(session: AsyncSession, event: CloudEvent, payload: EventPayload) -> None:
        assert isinstance(payload, family)
        if await plan(session=session, event=event, payload=payload):
            hub.wake_after_commit(session)

    return Subscription(group=group, streams=[stream], handlers=_every_type(stream, family, handle))


def _every_type(stream: Stream, base: type[EventPayload], handler: Handler) -> dict[str, Handler]:
    """Every registered type of the stream whose payload is of the family the handler reads."""
    return {
        definition.type: handler
        for definition in REGISTRY.types_of(stream)
        if issubclass(definition.model, base)
    }
