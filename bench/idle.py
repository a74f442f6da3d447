"""Memory and CPU of the whole `make up` stack at rest: the supervisor and every process under it.

`bali up` (through `RunningPlatform`, with the settings `make up` runs with) in a temporary
directory; once every service is ready and the pipeline quiet, it is left alone for 30 s
more. Then the process tree (the supervisor, which also runs the SMTP mail drop, and all its
descendants: the embedded broker and the four services) is sampled over three consecutive
20 s windows, 60 s in all: CPU is the utime + stime delta of /proc/<pid>/stat over each
window, in % of one core; memory is VmRSS from /proc/<pid>/status and Pss from
/proc/<pid>/smaps_rollup at the end of each window (RSS counts shared pages once per
process, PSS shares them out, so only the PSS total adds up exactly). Prints per process and
in total; the CPU of the 60 s, and the median of the three windows.
Run: `make bench`, or `uv run --frozen python bench/idle.py [--quick]`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bali_devkit.testing.platform import RunningPlatform
from support import load_average, machine, make_up_env, median, stop_cleanly_on_sigterm

TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    ticks: int
    rss_kb: int
    pss_kb: int
    threads: int


def descendants(root: int) -> list[int]:
    """`root` and every process under it, parents before children."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parents.setdefault(parent_of(int(entry.name)), []).append(int(entry.name))
        except OSError:
            continue
    tree, queue = [], [root]
    while queue:
        pid = queue.pop(0)
        tree.append(pid)
        queue.extend(sorted(parents.get(pid, [])))
    return tree


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def sample(pid: int) -> Sample | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = Path(f"/proc/{pid}/status").read_text()
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None

    def kilobytes(text: str, name: str) -> int:
        line = next((x for x in text.splitlines() if x.startswith(f"{name}:")), f"{name}: 0 kB")
        return int(line.split()[1])

    return Sample(
        ticks=int(fields[11]) + int(fields[12]),
        rss_kb=kilobytes(status, "VmRSS"),
        pss_kb=kilobytes(rollup, "Pss"),
        threads=int(fields[17]),
    )


def names(platform: RunningPlatform, supervisor: int) -> dict[int, str]:
    named = {pid: name for name, pid in platform.children().items()}
    named[supervisor] = "bali up (supervisor, mail drop)"
    return named


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rest", type=float, default=30.0, help="after ready, before sampling")
    parser.add_argument("--window", type=float, default=20.0, help="seconds per window")
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="10 s rest, three 5 s windows")
    args = parser.parse_args()
    if args.quick:
        args.rest, args.window = 10.0, 5.0
    stop_cleanly_on_sigterm()
    print(f"{machine()}; load average at start {load_average()}")
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as workdir:
        platform = RunningPlatform(Path(workdir) / "platform", env=make_up_env())
        try:
            started = platform.start()
            asyncio.run(platform.quiescent(timeout=180))
            print(f"bali up ready in {started:.1f} s; resting {args.rest:.0f} s", flush=True)
            time.sleep(args.rest)
            supervisor = parent_of(next(iter(platform.children().values())))
            named = names(platform, supervisor)
            windows: list[tuple[dict[int, Sample], dict[int, Sample], float, str]] = []
            for _ in range(args.windows):
                loadavg = load_average()
                before = {pid: s for pid in descendants(supervisor) if (s := sample(pid))}
                began = time.monotonic()
                time.sleep(args.window)
                after = {pid: s for pid in descendants(supervisor) if (s := sample(pid))}
                windows.append((before, after, time.monotonic() - began, loadavg))
        finally:
            platform.stop()
    report(windows, named)
    print(f"load average at the end {load_average()}")
    return 0


def report(
    windows: list[tuple[dict[int, Sample], dict[int, Sample], float, str]], named: dict[int, str]
) -> None:
    pids = list(dict.fromkeys(pid for _, after, _, _ in windows for pid in after))
    span = sum(seconds for *_, seconds, _ in windows)

    def cpu(pid: int, window: int) -> float:
        before, after, seconds, _ = windows[window]
        if pid not in before or pid not in after:
            return 0.0
        return 100 * (after[pid].ticks - before[pid].ticks) / TICK / seconds

    def over_all(pid: int) -> float:
        return sum(cpu(pid, w) * windows[w][2] for w in range(len(windows))) / span

    last = windows[-1][1]
    header = " | ".join(f"CPU % w{w + 1}" for w in range(len(windows)))
    print(f"\n| process | pid | threads | RSS MB | PSS MB | {header} | CPU % {span:.0f} s |")
    print("|---|---|---|---|---|" + "---|" * len(windows) + "---|")
    for pid in pids:
        s = last.get(pid)
        if s is None:
            continue
        per_window = " | ".join(f"{cpu(pid, w):.1f}" for w in range(len(windows)))
        print(
            f"| {named.get(pid, f'pid {pid}')} | {pid} | {s.threads} | {s.rss_kb / 1024:.0f} "
            f"| {s.pss_kb / 1024:.0f} | {per_window} | {over_all(pid):.1f} |"
        )
    totals = [sum(cpu(pid, w) for pid in pids) for w in range(len(windows))]
    per_window = " | ".join(f"**{t:.1f}**" for t in totals)
    rss = sum(s.rss_kb for s in last.values()) / 1024
    pss = sum(s.pss_kb for s in last.values()) / 1024
    print(
        f"| **total** | | {sum(s.threads for s in last.values())} | **{rss:.0f}** | **{pss:.0f}** "
        f"| {per_window} | **{sum(over_all(pid) for pid in pids):.1f}** |"
    )
    print(
        f"\nidle CPU of the stack: {sum(over_all(pid) for pid in pids):.1f} % of one core over "
        f"{span:.0f} s (median of the windows {median(totals):.1f} %); "
        f"RSS {rss:.0f} MB, PSS {pss:.0f} MB (goal: RSS <= 600 MB)"
    )
    print("load average per window: " + "; ".join(w[3] for w in windows))


if __name__ == "__main__":
    raise SystemExit(main())
