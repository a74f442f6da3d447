"""Pausing the live consumer of every reporting replica while a rebuild catches up and swaps.

Each replica writes a heartbeat row every second and watches the rebuild runs: while
a run is catching up or swapping, it stops its live consumer (which commits what it
applied and leaves the group) and says so in its heartbeat; once the run has ended it
starts a new one. The replica running the rebuild waits until every replica seen
lately has paused before it reads the group's committed offsets, so no one applies or
commits anything the swap would then throw away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bali_common.db import SessionFactory, as_utc, transaction, utc_column, utcnow
from bali_common.messaging.consumer import ConsumerRunner
from bali_common.messaging.handlers import ConsumerGroup
from bali_common.runtime import ServiceRuntime
from sqlmodel import Field, SQLModel, col, select

from bali_reporting.rebuild.models import PAUSING, RebuildRun

log = logging.getLogger(__name__)

HEARTBEAT_EVERY = timedelta(seconds=1)
#: A replica not heard of for this long is gone: it consumes nothing either.
GONE_AFTER = timedelta(seconds=6)


class ReportingReplica(SQLModel, table=True):
    """One running reporting process: when it was last seen and which rebuild it paused for."""

    __tablename__ = "reporting_replicas"

    replica_id: str = Field(primary_key=True, max_length=32)
    seen_at: datetime = Field(sa_column=utc_column())
    paused_for: str | None = Field(default=None, max_length=32)


@dataclass
class LiveConsumer:
    """Stops and starts this replica's runner of the group (a stopped runner cannot restart:
    a new one takes its place in the runtime)."""

    runtime: ServiceRuntime
    group: ConsumerGroup
    paused_for: str | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def _runner(self) -> ConsumerRunner | None:
        return next((r for r in self.runtime.consumers if r.group == self.group.name), None)

    async def pause(self, run_id: str) -> None:
        async with self._lock:
            if self.paused_for is None:
                runner = self._runner()
                if runner is not None:
                    await runner.stop()
                log.info("live consumer paused for rebuild %s", run_id)
            self.paused_for = run_id

    async def resume(self) -> None:
        """Start a new runner in place of the stopped one, retrying until it runs: reports
        must not stay frozen because the broker blinked."""
        async with self._lock:
            stopped = self._runner()
            if self.paused_for is None or stopped is None:
                self.paused_for = None
                return
            delay = 0.2
            while True:
                runner = ConsumerRunner(
                    settings=self.runtime.settings,
                    session_factory=self.runtime.sessions,
                    group=self.group,
                    metrics=self.runtime.metrics,
                )
                try:
                    await runner.start()
                    break
                except Exception as error:
                    with contextlib.suppress(Exception):
                        await runner.abandon()
                    log.warning("live consumer did not restart (%s); retry in %.1fs", error, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
            self.runtime.consumers[self.runtime.consumers.index(stopped)] = runner
            self.paused_for = None
            log.info("live consumer resumed")


async def pausing_run(sessions: SessionFactory, *, stale_after: timedelta) -> str | None:
    """The rebuild that wants the live consumers paused now, if any (a run whose process
    died is stale and pauses no one)."""
    async with sessions() as session:
        run = (
            await session.exec(
                select(RebuildRun)
                .where(col(RebuildRun.state).in_(sorted(PAUSING)))
                .order_by(col(RebuildRun.requested_at).desc())
            )
        ).first()
    if run is None or utcnow() - as_utc(run.updated_at) > stale_after:
        return None
    return run.id


async def beat(sessions: SessionFactory, replica_id: str, paused_for: str | None) -> None:
    async with transaction(sessions) as session:
        row = await session.get(ReportingReplica, replica_id)
        row = row or ReportingReplica(replica_id=replica_id, seen_at=utcnow())
        row.seen_at = utcnow()
        row.paused_for = paused_for
        session.add(row)


async def replicas_not_paused(sessions: SessionFactory, run_id: str) -> Sequence[str]:
    """Replicas seen lately that have not paused for the run yet."""
    async with sessions() as session:
        found = await session.exec(
            select(ReportingReplica).where(col(ReportingReplica.seen_at) >= utcnow() - GONE_AFTER)
        )
        return [r.replica_id for r in found if r.paused_for != run_id]
