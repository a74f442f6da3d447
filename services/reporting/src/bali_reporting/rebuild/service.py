"""Rebuild use cases: request one, follow its progress, and the worker that runs it.

A rebuild replays every topic into shadow tables while the live consumers keep
running, so the reports stay up to date meanwhile. The shadow starts empty: the replay
up to the high-water marks first seen is folded in memory and written once (see
`replay`). Then every replica pauses its live consumer (which commits what it applied
and leaves the group; see `pausing`), the rebuild reads on up to the group's committed
offsets, swaps the shadow tables and the group's inbox rows in as one transaction, and
the live consumers start again. The replay may have read further than the group had
committed; those events are in the swapped inbox, so the live consumers skip them when
they meet them again. One rebuild runs at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import uuid4

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from bali_common.db import SessionFactory, as_utc, transaction, utcnow
from bali_common.messaging.handlers import ConsumerGroup
from bali_common.messaging.kafka import connection_options
from bali_common.problems import conflict
from bali_common.runtime import ServiceRuntime
from bali_common.settings import CommonSettings
from sqlmodel import SQLModel, col, select

from bali_reporting.projections.base import Projection
from bali_reporting.rebuild.models import FINISHED, RebuildRun, RebuildState, RebuildStatus
from bali_reporting.rebuild.pausing import (
    HEARTBEAT_EVERY,
    LiveConsumer,
    beat,
    pausing_run,
    replicas_not_paused,
)
from bali_reporting.rebuild.replay import Positions, Replayer
from bali_reporting.rebuild.shadow import ShadowStore

log = logging.getLogger(__name__)

#: A run whose progress has not been written for this long died with its process.
STALE_AFTER = timedelta(seconds=60)
#: How long the rebuild waits for every replica to pause before it gives up.
PAUSE_TIMEOUT_S = 30.0
_PROGRESS_EVERY_S = 0.5


@dataclass
class Rebuilds:
    """The rebuild part of the reporting service (reached through `ReportingParts`)."""

    settings: CommonSettings
    sessions: SessionFactory
    group: ConsumerGroup
    projections: Sequence[Projection]
    models: Sequence[type[SQLModel]]
    batch_events: int
    replica_id: str = field(default_factory=lambda: uuid4().hex)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _live: LiveConsumer | None = None
    _rebuilding: bool = False

    async def request(self, *, requested_by: str) -> RebuildStatus:
        """Queue a rebuild; 409 while another one is under way."""
        now = utcnow()
        async with transaction(self.sessions) as session:
            unfinished = await session.exec(
                select(RebuildRun).where(col(RebuildRun.state).not_in([s.value for s in FINISHED]))
            )
            for run in unfinished:
                if now - as_utc(run.updated_at) < STALE_AFTER:
                    raise conflict(f"rebuild {run.id} is {run.state}; follow it until it ends")
                run.state = RebuildState.abandoned.value
                run.finished_at = now
                session.add(run)
            run = RebuildRun(
                id=uuid4().hex,
                state=RebuildState.queued.value,
                requested_by=requested_by,
                requested_at=now,
                updated_at=now,
            )
            session.add(run)
        self._wake.set()
        return RebuildStatus.of(run)

    async def status(self, run_id: str | None = None) -> RebuildStatus | None:
        """One run, or the latest when `run_id` is None."""
        async with self.sessions() as session:
            query = select(RebuildRun)
            if run_id is not None:
                query = query.where(RebuildRun.id == run_id)
            run = (await session.exec(query.order_by(col(RebuildRun.requested_at).desc()))).first()
        return RebuildStatus.of(run) if run is not None else None

    async def serve(self, runtime: ServiceRuntime) -> None:
        """Background task of the service: keep this replica's heartbeat and pause, and run
        the rebuilds requested here, one at a time."""
        await runtime.messaging_ready.wait()
        self._live = LiveConsumer(runtime, self.group)
        watcher = asyncio.create_task(self._watch(self._live), name="rebuild-watcher")
        self._wake.set()  # runs queued before a restart are picked up (or found stale)
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                async with self.sessions() as session:
                    queued = (
                        await session.exec(
                            select(RebuildRun.id)
                            .where(RebuildRun.state == RebuildState.queued.value)
                            .order_by(col(RebuildRun.requested_at))
                        )
                    ).all()
                for run_id in queued:
                    await self._run(self._live, run_id)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _watch(self, live: LiveConsumer) -> None:
        """Every second: pause for a rebuild that catches up or swaps, resume after it."""
        while True:
            try:
                run_id = await pausing_run(self.sessions, stale_after=STALE_AFTER)
                if run_id is not None and live.paused_for != run_id:
                    await live.pause(run_id)
                elif run_id is None and live.paused_for is not None and not self._rebuilding:
                    await live.resume()
                await beat(self.sessions, self.replica_id, live.paused_for)
            except Exception:
                log.warning("rebuild watcher could not check in", exc_info=True)
            await asyncio.sleep(HEARTBEAT_EVERY.total_seconds())

    async def _run(self, live: LiveConsumer, run_id: str) -> None:
        shadow = ShadowStore(self.settings.resolved_database_url(), self.models, self.group.name)
        replayer = Replayer(self.settings, self.group, self.projections, shadow, self.batch_events)
        progress = _Progress(self, run_id, replayer)
        outcome: dict[str, Any] = {"state": RebuildState.done.value}
        self._rebuilding = True
        try:
            await progress.write(state=RebuildState.replaying, started_at=utcnow())
            await shadow.open()
            await replayer.start()
            first: Positions = {}

            def known_ends() -> Positions | None:
                for tp, mark in replayer.highwater().items():
                    first.setdefault(tp, mark)
                return first if len(first) == len(replayer.positions) else None

            phases = _Phases(run_id)
            with _collector_paused():
                await replayer.read_until(known_ends, lambda: progress.tick(known_ends()))
                phases.done("read and folded", replayer.counts.read)
                written = await replayer.write_folded(lambda: progress.tick(known_ends()))
            if not written:
                await shadow.clear()
                await replayer.rewind()
                await replayer.read_until(known_ends, lambda: progress.tick(known_ends()))
            phases.done("wrote", replayer.counts.applied)
            await progress.write(state=RebuildState.catching_up)
            await self._pause_everyone(live, run_id, progress)
            phases.done("paused the live consumers")
            ends = await self._catch_up(replayer, first, progress)
            phases.done("caught up", replayer.counts.read)
            await progress.write(state=RebuildState.swapping, target=ends)
            await shadow.swap()
            phases.done("swapped")
        except asyncio.CancelledError:
            outcome = {"state": RebuildState.abandoned.value, "error": "the service stopped"}
            raise
        except Exception as error:
            log.exception("rebuild %s failed", run_id)
            outcome = {
                "state": RebuildState.failed.value,
                "error": f"{type(error).__name__}: {error}",
            }
        finally:
            self._rebuilding = False
            await replayer.stop()
            await shadow.close()
            with contextlib.suppress(Exception):
                await progress.write(finished_at=utcnow(), **outcome)
            if outcome["state"] != RebuildState.abandoned.value:
                await live.resume()

    async def _pause_everyone(self, live: LiveConsumer, run_id: str, progress: _Progress) -> None:
        """Pause here, then wait until every replica seen lately has paused too."""
        await live.pause(run_id)
        await beat(self.sessions, self.replica_id, run_id)
        deadline = time.monotonic() + PAUSE_TIMEOUT_S
        while waiting := await replicas_not_paused(self.sessions, run_id):
            if time.monotonic() > deadline:
                raise TimeoutError(f"replicas {', '.join(waiting)} did not pause")
            progress.tick(None)
            await asyncio.sleep(0.2)

    async def _catch_up(
        self, replayer: Replayer, first: Positions, progress: _Progress
    ) -> Positions:
        """Replay up to the committed offsets, until they stop moving (a replica that joined
        late may have committed a little more before it paused)."""
        while True:
            committed = await self._committed(replayer.partitions)
            ends = {tp: max(first[tp], committed.get(tp, 0)) for tp in replayer.positions}
            await replayer.read_until(
                functools.partial(dict, ends), functools.partial(progress.tick, ends)
            )
            if await self._committed(replayer.partitions) == committed:
                return ends

    async def _committed(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """The live group's committed offsets (tansu needs the partitions named)."""
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            client_id=f"{self.settings.service_name}-rebuild-admin",
            request_timeout_ms=self.settings.kafka_request_timeout_ms,
            **connection_options(self.settings),
        )
        await admin.start()
        try:
            found = await admin.list_consumer_group_offsets(
                f"{self.settings.kafka_topic_prefix}{self.group.name}", partitions=partitions
            )
        finally:
            await admin.close()
        return {tp: meta.offset for tp, meta in found.items() if meta.offset >= 0}


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No automatic garbage collection while the first pass folds and writes.

    The fold keeps every aggregate's final state alive until it is written (138 MB for
    80,000 events), so each full collection walks more of it than the last and frees none
    of it: in `bench/reporting.py` full collections took 14.5 s of the two rebuilds, and
    with the collector paused 3.3 s (the rest of the bench), the rebuild going from 1,708
    to 2,572 events/s. The fold's state holds no reference cycles (it is freed by reference
    counting when written); the cyclic garbage of requests served meanwhile waits for the
    first collection after the pass.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _Phases:
    """Logs how long each phase of a run took: where a slow rebuild spends its time."""

    def __init__(self, run_id: str) -> None:
        self._run_id = run_id
        self._since = time.monotonic()

    def done(self, phase: str, events: int | None = None) -> None:
        now = time.monotonic()
        counted = f" ({events:,} events)" if events is not None else ""
        log.info("rebuild %s %s%s in %.2fs", self._run_id, phase, counted, now - self._since)
        self._since = now


class _Progress:
    """Writes a run's counters to its row, at most twice a second while replaying."""

    def __init__(self, rebuilds: Rebuilds, run_id: str, replayer: Replayer) -> None:
        self._rebuilds = rebuilds
        self._run_id = run_id
        self._replayer = replayer
        self._last = 0.0
        self._pending: asyncio.Task[None] | None = None

    def tick(self, target: Positions | None) -> None:
        if time.monotonic() - self._last < _PROGRESS_EVERY_S or self._pending is not None:
            return
        self._last = time.monotonic()
        self._pending = asyncio.create_task(self._write_then_clear(target))

    async def _write_then_clear(self, target: Positions | None) -> None:
        try:
            await self.write(target=target)
        except Exception:
            log.warning("could not record rebuild progress", exc_info=True)
        finally:
            self._pending = None

    async def write(
        self,
        *,
        state: RebuildState | str | None = None,
        target: Positions | None = None,
        **values: Any,
    ) -> None:
        if self._pending is not None and asyncio.current_task() is not self._pending:
            await asyncio.shield(self._pending)
        counts = self._replayer.counts
        async with transaction(self._rebuilds.sessions) as session:
            run = await session.get(RebuildRun, self._run_id)
            if run is None:
                return
            if state is not None:
                run.state = RebuildState(state).value
            if target is not None:
                run.events_target = sum(target.values())
            run.events_read = counts.read
            run.events_applied = counts.applied
            run.duplicates = counts.duplicates
            run.skipped = counts.skipped
            run.failed = counts.failed
            run.updated_at = utcnow()
            for name, value in values.items():
                setattr(run, name, value)
            session.add(run)
