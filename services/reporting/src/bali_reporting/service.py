"""Use cases of the reporting service: projections fed by the consumers, read by the routes."""

from __future__ import annotations

from bali_common.db import as_utc
from bali_common.events import CloudEvent
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_reporting.models import EventTally, EventTallyPublic


async def count_event(*, session: AsyncSession, event: CloudEvent, stream: str) -> None:
    """Non-committing: the consumer runner commits it together with the inbox row."""
    tally = await session.get(EventTally, event.type)
    if tally is None:
        tally = EventTally(event_type=event.type, stream=stream, count=0, last_event_at=event.time)
    tally.count += 1
    tally.last_event_at = max(as_utc(tally.last_event_at), event.time)
    session.add(tally)


async def list_event_tallies(*, session: AsyncSession) -> list[EventTallyPublic]:
    rows = await session.exec(select(EventTally).order_by(EventTally.event_type))
    return [
        EventTallyPublic(
            event_type=row.event_type,
            stream=row.stream,
            count=row.count,
            last_event_at=as_utc(row.last_event_at),
        )
        for row in rows
    ]
