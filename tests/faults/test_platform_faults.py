"""The platform under `bali up`, with writes going on, through the faults an operator meets:
Ctrl-C and up again, a service killed, the broker killed, the broker paused. Each run ends
in quiescence and a full reconciliation: every accepted write readable, reporting's tallies
equal to the writes, exactly one email per co-chair focal point per alert, backlog and lag 0.

CI runs a reduced load; `make faults` runs the full one (BALI_FAULTS_FULL=1). With
BALI_FAULTS_TIMINGS=<file>, recovery times are appended there as JSON lines (bench/).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from bali_devkit.testing.platform import (
    SERVICES,
    PlatformError,
    Reconciliation,
    RunningPlatform,
    WriteLoad,
    reconcile,
)

pytestmark = pytest.mark.slow

FULL = os.environ.get("BALI_FAULTS_FULL") == "1"
#: Seconds of steady load around each fault, and its pace (requests per second).
LOAD_S = 8.0 if FULL else 3.0
RATE = 25.0 if FULL else 12.0


def record(fault: str, **timings: object) -> None:
    target = os.environ.get("BALI_FAULTS_TIMINGS")
    if target:
        with Path(target).open("a") as out:
            out.write(json.dumps({"fault": fault, **timings, "full": FULL}) + "\n")


@pytest.fixture
def platform(tmp_path: Path) -> Any:
    running = RunningPlatform(tmp_path / "platform")
    running.start()
    yield running
    running.stop()


@asynccontextmanager
async def steady_load(platform: RunningPlatform, load: WriteLoad) -> AsyncIterator[None]:
    """Writes go on in the background for the whole block."""
    stop = asyncio.Event()
    task = asyncio.create_task(load.run(stop))
    await asyncio.sleep(LOAD_S)
    try:
        yield
        await asyncio.sleep(LOAD_S)
    finally:
        stop.set()
        await task


async def reconciled(platform: RunningPlatform, load: WriteLoad) -> Reconciliation:
    """Quiescence, then a reconciliation that must come out clean (given time to settle)."""
    await platform.quiescent()
    deadline = time.monotonic() + 60
    while True:
        result = await reconcile(platform, load)
        problems = result.problems(load)
        if not problems:
            return result
        if time.monotonic() > deadline:
            raise PlatformError("\n".join(problems))
        await asyncio.sleep(1)


def in_thread(call: Callable[[], Any]) -> Coroutine[Any, Any, Any]:
    return asyncio.to_thread(call)


async def test_ctrl_c_and_up_again_three_times_loses_and_duplicates_nothing(
    platform: RunningPlatform,
) -> None:
    load = WriteLoad(platform, rate=RATE)
    for cycle in range(3):
        async with steady_load(platform, load):
            paused = ()
            if cycle == 1:
                # The consumers of the others' events stall just before the stop.
                paused = ("notifications", "reporting")
                pids = [platform.signal(name, signal.SIGSTOP) for name in paused]
            stopping = asyncio.create_task(in_thread(platform.interrupt))
            if paused:
                await asyncio.sleep(5)
                for pid in pids:
                    os.kill(pid, signal.SIGCONT)
            started = time.monotonic()
            assert await stopping == 0
            stopped_after = time.monotonic() - started
            ready_after = await in_thread(platform.start)
            record("ctrl-c and up", stop_s=stopped_after, ready_s=ready_after)
    await reconciled(platform, load)
    assert len(load.alerts) > 0
    assert len(load.activities) > 0


async def test_each_service_killed_in_turn_is_back_and_the_others_keep_answering(
    platform: RunningPlatform,
) -> None:
    load = WriteLoad(platform, rate=RATE)
    async with steady_load(platform, load):
        for name in SERVICES:
            refused_before = sum(load.refused.values())
            pid = platform.signal(name, signal.SIGKILL)
            back_after = await platform.wait_back(name, pid, timeout=30)
            record("service SIGKILL", service=name, back_s=back_after)
            assert back_after <= 10, f"{name} took {back_after:.1f}s to come back"
            if name != "activities" and name != "consultation":
                # Nothing the load writes to went away: every write still answered.
                assert sum(load.refused.values()) == refused_before
            await asyncio.sleep(1)
    await reconciled(platform, load)


async def test_broker_killed_is_back_and_every_event_reaches_every_consumer(
    platform: RunningPlatform,
) -> None:
    load = WriteLoad(platform, rate=RATE)
    async with steady_load(platform, load):
        pid = platform.signal("broker", signal.SIGKILL)
        killed = time.monotonic()
        back_after = await platform.wait_back("broker", pid, timeout=30)
        assert back_after <= 15, f"the broker took {back_after:.1f}s to come back"
    await platform.quiescent(settle=0)
    record("broker SIGKILL", back_s=back_after, caught_up_s=time.monotonic() - killed)
    await reconciled(platform, load)
    assert not load.refused, f"writes refused while the broker was away: {load.refused}"


async def test_broker_paused_ten_seconds_every_write_succeeds(
    platform: RunningPlatform,
) -> None:
    load = WriteLoad(platform, rate=RATE)
    stop = asyncio.Event()
    writing = asyncio.create_task(load.run(stop))
    await asyncio.sleep(LOAD_S)
    pid = platform.signal("broker", signal.SIGSTOP)
    await asyncio.sleep(10)
    os.kill(pid, signal.SIGCONT)
    resumed = time.monotonic()
    stop.set()
    await writing
    await platform.quiescent(settle=0)
    record("broker SIGSTOP 10 s", caught_up_s=time.monotonic() - resumed)
    await reconciled(platform, load)
    assert not load.refused, f"writes refused while the broker was paused: {load.refused}"
