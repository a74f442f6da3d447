"""Consumers of the reporting service: it listens to every stream."""

from __future__ import annotations

from bali_common.events import CloudEvent, EventPayload
from bali_common.messaging.handlers import EventHandlers
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_reporting import service

handlers = EventHandlers()


@handlers.on(EventPayload)
async def tally(session: AsyncSession, event: CloudEvent, payload: EventPayload) -> None:
    """Every registered event type of every stream, tallied."""
    await service.count_event(session=session, event=event, stream=payload.stream.value)
