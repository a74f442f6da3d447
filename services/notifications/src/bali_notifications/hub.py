"""In-process signals: hand committed deliveries to the dispatcher; push inbox items to streams."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy import event
from sqlalchemy.orm import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_notifications.deliveries.models import DeliveryJob
from bali_notifications.inbox.models import InboxItemPublic

log = logging.getLogger(__name__)

_WAKE_INFO_KEY = "bali_notifications_wake"
_HANDOVER_INFO_KEY = "bali_notifications_handover"
#: How far a slow stream may fall behind before it is closed (the client reconnects, catches up).
_STREAM_BUFFER = 1000


@dataclass(eq=False)
class _Listener:
    owners: frozenset[str]
    queue: asyncio.Queue[InboxItemPublic | None] = field(
        default_factory=lambda: asyncio.Queue(_STREAM_BUFFER)
    )


@dataclass
class Handover:
    """Deliveries planned in one transaction and claimed in it for this process's dispatcher.

    The rows are written already leased to the dispatcher (`claimed_by`, `claimed_until`), so
    no poll of any replica takes them; once the transaction commits the jobs go to the
    dispatcher in memory and are sent at once: no second claim transaction, no wake-up. A
    handover lost on the way (a crash, a stop) leaves rows whose lease runs out, or that the
    dispatcher's next start takes back: polling sends them then.
    """

    claimed_by: str
    claimed_until: datetime
    jobs: list[DeliveryJob] = field(default_factory=list)


class HandoverTarget(Protocol):
    """The running dispatcher, as planners see it."""

    @property
    def dispatcher_id(self) -> str: ...

    def lease_until(self) -> datetime:
        """When a claim taken now runs out."""
        ...

    def hand_over(self, jobs: Sequence[DeliveryJob]) -> None:
        """Committed, claimed deliveries to send now; must not block."""
        ...


class NotificationHub:
    """One per app instance; other replicas are reached through the database (polling)."""

    def __init__(self) -> None:
        self._work = asyncio.Event()
        self._listeners: set[_Listener] = set()
        self._dispatcher: HandoverTarget | None = None

    def wake_dispatcher(self) -> None:
        self._work.set()

    def attach(self, dispatcher: HandoverTarget) -> None:
        """The dispatcher runs and takes handovers (until `detach`)."""
        self._dispatcher = dispatcher

    def detach(self, dispatcher: HandoverTarget) -> None:
        if self._dispatcher is dispatcher:
            self._dispatcher = None

    def handover(self, session: AsyncSession) -> Handover | None:
        """The handover of the caller's transaction (one per transaction), delivered to the
        dispatcher once it commits and dropped on rollback; None when no dispatcher runs in
        this process: the rows are then left unclaimed for whichever dispatcher polls."""
        existing = session.info.get(_HANDOVER_INFO_KEY)
        if isinstance(existing, tuple):
            _, handover = existing
            assert isinstance(handover, Handover)
            return handover
        target = self._dispatcher
        if target is None:
            return None
        handover = Handover(claimed_by=target.dispatcher_id, claimed_until=target.lease_until())
        session.info[_HANDOVER_INFO_KEY] = (self, handover)
        return handover

    def _deliver(self, handover: Handover) -> None:
        target = self._dispatcher
        if not handover.jobs:
            return
        if target is None or target.dispatcher_id != handover.claimed_by:
            # Stopped meanwhile: its next start takes the claims back, or their lease runs out.
            return
        try:
            target.hand_over(handover.jobs)
        except Exception:
            # Raised here, it would fail a commit that happened: the planner would think its
            # plan lost. The rows stay claimed; the poll sends them once the lease runs out.
            log.exception("handing %d deliveries to the dispatcher failed", len(handover.jobs))

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
    handed = session.info.pop(_HANDOVER_INFO_KEY, None)
    if isinstance(handed, tuple):
        owner, handover = handed
        owner._deliver(handover)


@event.listens_for(Session, "after_rollback")
def _forget_wake_after_rollback(session: Session) -> None:
    session.info.pop(_WAKE_INFO_KEY, None)
    session.info.pop(_HANDOVER_INFO_KEY, None)
