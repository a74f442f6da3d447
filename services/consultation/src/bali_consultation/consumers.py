"""Event consumers of the consultation service: the member directory projection."""

from __future__ import annotations

from bali_common.events import CloudEvent
from bali_common.events.members import MemberRegistered, MemberSnapshot, MemberUpdated
from bali_common.messaging.handlers import EventHandlers
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_consultation import directory

handlers = EventHandlers()


@handlers.on(MemberRegistered, MemberUpdated)
async def apply_member_snapshot(
    session: AsyncSession, _event: CloudEvent, snapshot: MemberSnapshot
) -> None:
    """Upsert by version: a redelivered or reordered older snapshot changes nothing."""
    await directory.upsert(session=session, snapshot=snapshot)
