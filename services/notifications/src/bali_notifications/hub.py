"""In-process signals: wake the dispatcher when deliveries commit; push inbox items to streams."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

from sqlalchemy import event
from sqlalchemy.orm import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_notifications.inbox.models import InboxItemPublic

_WAKE_INFO_KEY = "bali_notifications_wake"
#: How far a slow stream may fall behind before it is closed (the client reconnects, catches up).
_STREAM_BUFFER = 1000


@dataclass(eq=False)
class _Listener:
    owners: frozenset[str]
    queue: asyncio.Queue[InboxItemPublic | None] = field(
        default_factory=lambda: asyncio.Queue(_STREAM_BUFFER)
    )


class NotificationHub:
    """One per app instance; other replicas are reached through the database (polling)."""

    def __init__(self) -> None:
        self._work = asyncio.Event()
        self._listeners: set[_Listener] = set()

    def wake_dispatcher(self) -> None:
        self._work.set()

    def wake_after_commit(self, session: AsyncSession) -> None:
        """Wake the dispatcher once the caller's transaction commits (never on rollback)."""
        session.info[_WAKE_INFO_KEY] = self

    async def wait_for_work(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._work.wait(), timeout)
        self._work.clear()

    def publish(self, items: Iterable[InboxItemPublic]) -> None:
        """Hand committed inbox items to the live streams of their owners."""
        for item in items:
            for listener in list(self._listeners):
                if item.owner not in listener.owners:
                    continue
                try:
                    listener.queue.put_nowait(item)
                except asyncio.QueueFull:
                    self._listeners.discard(listener)
                    listener.queue.get_nowait()
                    listener.queue.put_nowait(None)

    @contextlib.asynccontextmanager
    async def listen(
        self, owners: Iterable[str]
    ) -> AsyncIterator[asyncio.Queue[InboxItemPublic | None]]:
        """A queue of new items for these owners; None means the stream fell behind and must end."""
        listener = _Listener(owners=frozenset(owners))
        self._listeners.add(listener)
        try:
            yield listener.queue
        finally:
            self._listeners.discard(listener)


@event.listens_for(Session, "after_commit")
def _wake_dispatcher_after_commit(session: Session) -> None:
    hub = session.info.pop(_WAKE_INFO_KEY, None)
    if isinstance(hub, NotificationHub):
        hub.wake_dispatcher()


@event.listens_for(Session, "after_rollback")
def _forget_wake_after_rollback(session: Session) -> None:
    session.info.pop(_WAKE_INFO_KEY, None)
