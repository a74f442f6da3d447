"""Consumers of the reporting service: one group feeding every projection, in order."""

from __future__ import annotations

from bali_common.events import CloudEvent, EventPayload
from bali_common.messaging.handlers import EventHandlers, TypedHandler
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_reporting.projections import PROJECTIONS
from bali_reporting.projections.base import Projection

GROUP = "reporting.projections"

handlers = EventHandlers()


def _one_event(projection: Projection) -> TypedHandler[EventPayload]:
    """A projection's batch apply, for the one event the consumer runner hands over."""

    async def handle(session: AsyncSession, event: CloudEvent, payload: EventPayload) -> None:
        await projection.apply(session, [(event, payload)])

    handle.__name__ = f"project_{projection.name}"
    return handle


for _projection in PROJECTIONS:
    handlers.on(*_projection.takes)(_one_event(_projection))
