"""Event consumers of the consultation service: the member directory projection."""

from __future__ import annotations

from bali_common.events import CloudEvent, EventPayload
from bali_common.events.members import MemberSnapshot
from bali_common.events.topics import Stream
from bali_common.messaging.consumer import Subscription
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_consultation import service


async def apply_member_snapshot(
    session: AsyncSession, _event: CloudEvent, payload: EventPayload
) -> None:
    """Upsert by version: a redelivered or reordered older snapshot changes nothing."""
    assert isinstance(payload, MemberSnapshot)
    await service.upsert_member(session=session, snapshot=payload)


MEMBERS_SUBSCRIPTION = Subscription(
    group="consultation.members",
    streams=[Stream.members],
    handlers={"member.registered": apply_member_snapshot, "member.updated": apply_member_snapshot},
)
