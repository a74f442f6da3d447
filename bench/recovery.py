"""Time to recover from each fault of the platform fault suite, under its full load.

Runs `tests/faults/test_platform_faults.py` with BALI_FAULTS_FULL=1 and collects the times
each test records (ready again after Ctrl-C and `bali up`, a killed service back, the broker
back and every consumer caught up, caught up after a 10 s broker pause), then prints them.
Run: `uv run python bench/recovery.py` (also part of `make faults`).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    with tempfile.TemporaryDirectory() as workdir:
        timings = Path(workdir) / "timings.jsonl"
        env = {**os.environ, "BALI_FAULTS_FULL": "1", "BALI_FAULTS_TIMINGS": str(timings)}
        outcome = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                str(ROOT / "tests/faults/test_platform_faults.py"),
            ],
            cwd=ROOT,
            env=env,
            check=False,
        )
        rows = (
            [json.loads(line) for line in timings.read_text().splitlines()]
            if timings.exists()
            else []
        )
    print(
        f"\n{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}; fault suite exit code {outcome.returncode}"
    )
    grouped: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        fault = row.pop("fault") + (f" ({row.pop('service')})" if "service" in row else "")
        row.pop("full", None)
        for measure, value in row.items():
            grouped[fault][measure].append(float(value))
    print("| fault | measure | median s | max s | runs |")
    print("|---|---|---|---|---|")
    for fault, measures in grouped.items():
        for measure, values in measures.items():
            print(
                f"| {fault} | {measure} | {statistics.median(values):.1f} | "
                f"{max(values):.1f} | {len(values)} |"
            )
    return outcome.returncode


if __name__ == "__main__":
    raise SystemExit(main())
