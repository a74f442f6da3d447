"""What the benchmark scripts share: the machine line, load averages, medians, child processes.

Nothing here is timed. `make_up_env` gives `RunningPlatform` the settings `make up` runs
with (the test harness shortens group and poll timings, which would change what is measured).
"""

from __future__ import annotations

import os
import platform
import signal
import statistics
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from bali_common.settings import CommonSettings
from bali_devkit.testing.platform import FAST_GROUPS


def machine() -> str:
    return (
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (other work on the machine shows here)."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: int) -> float:
    """Linear interpolation between the closest ranks (q in 1..99)."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def make_up_env() -> dict[str, str]:
    """Each setting the test harness shortens, back at its default: the platform as `make up`."""
    fields = CommonSettings.model_fields
    env = {}
    for variable in FAST_GROUPS:
        name = variable.removeprefix("BALI_").lower()
        if name not in fields:
            raise KeyError(f"{variable} is not a common setting; bench/support.py needs updating")
        env[variable] = str(fields[name].default)
    return env


def _raise_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def stop_cleanly_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so every `finally` stops the processes a script started."""
    signal.signal(signal.SIGTERM, _raise_on_sigterm)


class Child:
    """A child process with its output in a log file; `stop` always leaves nothing behind."""

    def __init__(
        self, name: str, argv: Sequence[str], *, log: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.name = name
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                list(argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextmanager
def running(child: Child) -> Iterator[Child]:
    try:
        yield child
    finally:
        child.stop()
