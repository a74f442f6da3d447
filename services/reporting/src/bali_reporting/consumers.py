"""Consumers of the reporting service: it listens to every stream."""

from __future__ import annotations

from bali_common.events import REGISTRY, CloudEvent, EventPayload, Stream
from bali_common.messaging.consumer import Handler, Subscription
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_reporting import service


def _tally_for(stream: Stream) -> Handler:
    async def tally(session: AsyncSession, event: CloudEvent, _payload: EventPayload) -> None:
        await service.count_event(session=session, event=event, stream=stream.value)

    return tally


def pipeline_subscription() -> Subscription:
    """Every registered event type of every stream, tallied."""
    return Subscription(
        group="reporting.pipeline",
        streams=list(Stream),
        handlers={d.type: _tally_for(d.stream) for d in REGISTRY},
    )
