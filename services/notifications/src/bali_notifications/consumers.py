"""Consumers of the notifications service: they plan deliveries, the dispatcher sends them."""

from __future__ import annotations

from bali_common.events import REGISTRY, CloudEvent, EventPayload, Stream
from bali_common.events.activities import ActivityEvent
from bali_common.events.alerts import AlertEvent
from bali_common.events.members import MemberSnapshot
from bali_common.messaging.consumer import Handler, Subscription
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_notifications import service
from bali_notifications.hub import NotificationHub


async def _apply_member(session: AsyncSession, _event: CloudEvent, payload: EventPayload) -> None:
    assert isinstance(payload, MemberSnapshot)
    await service.apply_member_snapshot(session=session, snapshot=payload)


def members_subscription() -> Subscription:
    """The member directory (co-chairs, focal points) that routing rules read."""
    return Subscription(
        group="notifications.members",
        streams=[Stream.members],
        handlers=_every_type(Stream.members, MemberSnapshot, _apply_member),
    )


def alerts_subscription(hub: NotificationHub) -> Subscription:
    async def plan(session: AsyncSession, event: CloudEvent, payload: EventPayload) -> None:
        assert isinstance(payload, AlertEvent)
        if await service.plan_alert_notifications(session=session, event=event, payload=payload):
            hub.wake_after_commit(session)

    return Subscription(
        group="notifications.alerts",
        streams=[Stream.alerts],
        handlers=_every_type(Stream.alerts, AlertEvent, plan),
    )


def activities_subscription(hub: NotificationHub) -> Subscription:
    async def plan(session: AsyncSession, event: CloudEvent, payload: EventPayload) -> None:
        assert isinstance(payload, ActivityEvent)
        if await service.plan_activity_notifications(session=session, event=event, payload=payload):
            hub.wake_after_commit(session)

    return Subscription(
        group="notifications.activities",
        streams=[Stream.activities],
        handlers=_every_type(Stream.activities, ActivityEvent, plan),
    )


def _every_type(stream: Stream, base: type[EventPayload], handler: Handler) -> dict[str, Handler]:
    """Every registered type of the stream whose payload is of the family the handler reads."""
    return {
        definition.type: handler
        for definition in REGISTRY.types_of(stream)
        if issubclass(definition.model, base)
    }
