"""`bali up` as a supervisor: restarts what crashes, stops in an order that loses nothing.

A crashed service is restarted with backoff and a log line; the others keep running. The
embedded broker is watched the same way: a new one starts on the same port (with a new
incarnation, so the services publish their kept outbox rows again onto it), and after
repeated failures the platform stops with a clear message. A planned stop asks the services
to stop one at a time, upstream first (each drains: its outbox empties and its consumers
catch up with what the services before it published), then the mail drop, and the broker
last.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from bali_devkit.broker import BrokerStartError, EmbeddedBroker

Say = Callable[[str, str], None]

#: Restart delays grow from the first to the last, and reset once a process has run this long.
_BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)
_HEALTHY_RUN_S = 60.0
#: A service gets this long to drain and exit after SIGTERM before it is killed.
_STOP_GRACE_S = 60.0


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str]


@dataclass
class Backoff:
    """Delays between restarts; a process that ran long enough starts over from the first."""

    restarts: int = 0
    started_at: float = field(default_factory=time.monotonic)

    def started(self) -> None:
        self.started_at = time.monotonic()

    def next_delay(self) -> float:
        if time.monotonic() - self.started_at >= _HEALTHY_RUN_S:
            self.restarts = 0
        delay = _BACKOFF_S[min(self.restarts, len(_BACKOFF_S) - 1)]
        self.restarts += 1
        return delay


class SupervisedProcess:
    """One child process, restarted when it exits unless a stop was asked for."""

    def __init__(self, spec: ProcessSpec, say: Say) -> None:
        self.spec = spec
        self._say = say
        self._process: asyncio.subprocess.Process | None = None
        self._stopping = False
        self._backoff = Backoff()
        self._started = asyncio.Event()
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def run(self) -> None:
        while not self._stopping:
            process = await self._spawn()
            pump = asyncio.create_task(self._pump(process), name=f"pump:{self.spec.name}")
            code = await process.wait()
            await pump
            if self._stopping:
                return
            delay = self._backoff.next_delay()
            self.restarts += 1
            self._say(
                "bali",
                f"{self.spec.name} exited with code {code}; restarting it in {delay:.1f}s "
                f"(restart {self.restarts}); the others keep running",
            )
            await asyncio.sleep(delay)

    async def _spawn(self) -> asyncio.subprocess.Process:
        self._process = await asyncio.create_subprocess_exec(
            *self.spec.argv,
            env=dict(self.spec.env),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        self._backoff.started()
        self._started.set()
        return self._process

    async def _pump(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            self._say(self.spec.name, line.decode(errors="replace").rstrip())

    async def wait_started(self) -> None:
        await self._started.wait()

    async def stop(self, *, grace: float = _STOP_GRACE_S) -> None:
        """SIGTERM, then SIGKILL if it has not drained and exited within `grace`."""
        self._stopping = True
        process = self._process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            self._say("bali", f"{self.spec.name} did not stop within {grace:.0f}s; killing it")
            self.kill()
            await process.wait()

    def kill(self) -> None:
        self._stopping = True
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()


class BrokerGaveUp(RuntimeError):
    """The broker kept failing: the platform stops rather than limp on."""


class BrokerWatch:
    """Keeps the embedded broker running: a broker that exits is started again on its port.

    `after_start` runs right after each start (creating the topics, before a client's
    metadata request can auto-create them with a default partition count).
    """

    def __init__(
        self,
        broker: EmbeddedBroker,
        say: Say,
        *,
        after_start: Callable[[], Awaitable[None]],
        max_failures: int = 5,
        window_s: float = 300.0,
    ) -> None:
        self.broker = broker
        self._say = say
        self._after_start = after_start
        self._max_failures = max_failures
        self._window_s = window_s
        self._failures: list[float] = []
        self._backoff = Backoff()
        self._stopping = False
        self.restarts = 0

    async def start(self) -> None:
        await asyncio.to_thread(self.broker.start)
        self._backoff.started()
        await self._after_start()

    async def watch(self) -> None:
        """Returns only by raising `BrokerGaveUp`, or when cancelled."""
        while True:
            await asyncio.sleep(0.2)
            code = self.broker.exit_code
            if code is None or self._stopping:
                continue
            now = time.monotonic()
            self._failures = [t for t in self._failures if now - t < self._window_s] + [now]
            if len(self._failures) >= self._max_failures:
                raise BrokerGaveUp(
                    f"the broker failed {len(self._failures)} times within "
                    f"{self._window_s / 60:.0f} minutes (last exit code {code})"
                )
            delay = self._backoff.next_delay()
            self._say(
                "bali",
                f"the broker exited with code {code} and lost what it held in memory; starting "
                f"a new one in {delay:.1f}s (the services publish their kept events again)",
            )
            await asyncio.sleep(delay)
            try:
                await self.start()
            except (BrokerStartError, OSError) as error:
                self._say("bali", f"the broker did not start: {error}")
                continue
            self.restarts += 1
            self._say("broker", f"a new broker incarnation on {self.broker.bootstrap_servers}")

    def stop(self) -> None:
        self._stopping = True
        self.broker.stop()


async def stop_in_order(processes: Sequence[SupervisedProcess], say: Say) -> None:
    """One at a time, upstream first: each drains while those after it still consume."""
    for process in processes:
        if process.running:
            say("bali", f"stopping {process.spec.name} (draining)")
        started = time.monotonic()
        await process.stop()
        if time.monotonic() - started > 1.0:
            say("bali", f"{process.spec.name} stopped after {time.monotonic() - started:.1f}s")


def python_module(module: str) -> list[str]:
    return [sys.executable, "-m", module]
