"""Rebuild use cases: request one, follow its progress, and the worker that runs it.

A rebuild replays every topic into shadow tables while the live consumer keeps
running, so the reports stay up to date meanwhile. Then it pauses the live consumer
(which commits what it applied and leaves the group), reads on up to the group's
committed offsets, swaps the shadow tables and the group's inbox rows in as one
transaction, and starts the live consumer again. The replay may have read further
than the group had committed; those events are in the swapped inbox, so the live
consumer skips them when it meets them again. One rebuild runs at a time.

It assumes one reporting replica consumes (the Kubernetes manifest runs one): other
members of the group would go on applying to the tables being replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import uuid4

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from bali_common.db import SessionFactory, as_utc, transaction, utcnow
from bali_common.messaging.consumer import ConsumerRunner
from bali_common.messaging.handlers import ConsumerGroup
from bali_common.messaging.kafka import connection_options
from bali_common.problems import conflict
from bali_common.runtime import ServiceRuntime
from bali_common.settings import CommonSettings
from sqlmodel import SQLModel, col, select

from bali_reporting.projections.base import Projection
from bali_reporting.rebuild.models import FINISHED, RebuildRun, RebuildState, RebuildStatus
from bali_reporting.rebuild.replay import Positions, Replayer
from bali_reporting.rebuild.shadow import ShadowStore

log = logging.getLogger(__name__)

#: A run whose progress has not been written for this long died with its process.
STALE_AFTER = timedelta(seconds=60)
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
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

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
        """Background task of the service: run queued rebuilds one at a time."""
        await runtime.messaging_ready.wait()
        self._wake.set()  # runs queued before a restart are picked up (or found stale)
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
                await self._run(runtime, run_id)

    async def _run(self, runtime: ServiceRuntime, run_id: str) -> None:
        live = next((r for r in runtime.consumers if r.group == self.group.name), None)
        shadow = ShadowStore(self.settings.resolved_database_url(), self.models, self.group.name)
        replayer = Replayer(self.settings, self.group, self.projections, shadow, self.batch_events)
        progress = _Progress(self, run_id, replayer)
        paused = False
        outcome: dict[str, Any] = {"state": RebuildState.done.value}
        try:
            await progress.write(state=RebuildState.replaying, started_at=utcnow())
            await shadow.open()
            await replayer.start()
            first: Positions = {}

            def known_ends() -> Positions | None:
                for tp, mark in replayer.highwater().items():
                    first.setdefault(tp, mark)
                return first if len(first) == len(replayer.positions) else None

            await replayer.read_until(known_ends, lambda: progress.tick(known_ends()))
            await progress.write(state=RebuildState.catching_up)
            if live is not None:
                await live.stop()
                paused = True
            committed = await self._committed(replayer.partitions)
            ends = {tp: max(first[tp], committed.get(tp, 0)) for tp in replayer.positions}
            await replayer.read_until(lambda: ends, lambda: progress.tick(ends))
            await progress.write(state=RebuildState.swapping, target=ends)
            await shadow.swap()
        except asyncio.CancelledError:
            outcome = {"state": RebuildState.abandoned.value, "error": "the service stopped"}
            paused = False  # the service is stopping: its consumers stop with it
            raise
        except Exception as error:
            log.exception("rebuild %s failed", run_id)
            outcome = {
                "state": RebuildState.failed.value,
                "error": f"{type(error).__name__}: {error}",
            }
        finally:
            await replayer.stop()
            await shadow.close()
            if paused and live is not None:
                await self._resume(runtime, live)
            with contextlib.suppress(Exception):
                await progress.write(finished_at=utcnow(), **outcome)

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

    async def _resume(self, runtime: ServiceRuntime, stopped: ConsumerRunner) -> None:
        """Start a new live consumer in place of the stopped one, retrying until it runs:
        reports must not stay frozen because the broker blinked."""
        delay = 0.2
        while True:
            runner = ConsumerRunner(
                settings=runtime.settings,
                session_factory=runtime.sessions,
                group=self.group,
                metrics=runtime.metrics,
            )
            try:
                await runner.start()
                break
            except Exception as error:
                with contextlib.suppress(Exception):
                    await runner.abandon()
                log.warning("live consumer did not restart (%s); retrying in %.1fs", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        runtime.consumers[runtime.consumers.index(stopped)] = runner


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
