"""The live inbox as server-sent events: unread items first, then each new one as it arrives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from bali_common.auth import Principal
from bali_common.db import SessionFactory

from bali_notifications.hub import NotificationHub
from bali_notifications.inbox import service
from bali_notifications.inbox.models import InboxItemPublic


async def frames(
    *,
    sessions: SessionFactory,
    hub: NotificationHub,
    principal: Principal,
    resume_after: int | None,
    heartbeat: float,
) -> AsyncIterator[str]:
    """The stream of the caller's items after `resume_after` (unread ones when None).

    Every item sent comes from `service.items_after`, which asks the visibility rule: a
    pushed item only wakes the stream up, so that what one reader of a member's inbox may
    see never reaches another through the push.
    """
    # Listen before the catch-up query so nothing committed in between is missed.
    async with hub.listen(service.owners(principal)) as queue:
        async with sessions() as session:
            backlog = await service.items_after(
                session=session, principal=principal, after_id=resume_after
            )
            last_id = resume_after
            if last_id is None:
                last_id = await service.latest_id(session=session, principal=principal)
        yield "retry: 3000\n\n"
        for item in backlog:
            last_id = max(last_id, item.id)
            yield _frame(item)
        while True:
            try:
                pushed = await asyncio.wait_for(queue.get(), heartbeat)
            except TimeoutError:
                # Items another replica stored reach this stream by polling.
                for item in await _after(sessions, principal, last_id):
                    last_id = max(last_id, item.id)
                    yield _frame(item)
                yield ": keep-alive\n\n"
                continue
            if pushed is None:
                return
            if pushed.id > last_id:
                for item in await _after(sessions, principal, last_id):
                    last_id = max(last_id, item.id)
                    yield _frame(item)
                # Past the pushed item even when the rule hides it from this reader.
                last_id = max(last_id, pushed.id)


async def _after(
    sessions: SessionFactory, principal: Principal, last_id: int
) -> list[InboxItemPublic]:
    async with sessions() as session:
        return await service.items_after(session=session, principal=principal, after_id=last_id)


def _frame(item: InboxItemPublic) -> str:
    return f"id: {item.id}\nevent: inbox.item\ndata: {item.model_dump_json()}\n\n"
