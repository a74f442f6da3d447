"""`POST /v1/activities` of the activities service against a bare FastAPI app, side by side.

Timed: `wrk` (one thread, a fixed duration, after a warm-up) posting a valid activity body
(the API's documented example, a unique title per request) with a valid bearer token, at 16
and then 64 connections, first to the bare app (`bench/bare_app.py`: same request model,
one INSERT through the same kind of engine, served the same way), then to the real service
(`python -m bali_activities`, settings from the environment, its own SQLite database and an
embedded broker started here). Each server gets a fresh database per run. The Lua script
counts non-2xx answers; req/s counts 2xx answers only. Prints req/s, p50/p99 latency and the
ratios service/bare per run, then the medians of the runs.

Also measured per load: the server's CPU (utime + stime of all its threads, and of its main
thread, the event loop, from /proc), as cores in use and as CPU ms per answer.

`--ceiling` also measures, in each run right after the bare app, the bare app writing the
rows the service must write (`bare_app.py --same-writes`: activity, version, audit record,
outbox row, in the service's own tables): how far the guarantees alone take the bare app
down, and so the most the service could reach against it.

`--profile FILE` also runs `py-spy record --gil --nonblocking` on the service during one more
64-connection load (not one of the measured runs): it samples whichever thread holds the GIL,
so the shares are of the Python time (sqlite's own C work in the aiosqlite thread runs without
the GIL and is not in them), and prints them by thread, by group and by function. py-spy is
not a project dependency:
`uv run --frozen --with py-spy python bench/post.py --runs 0 --profile /tmp/post.txt`.
Run: `make bench`, or `uv run --frozen python bench/post.py [--quick]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
from bali_activities.activities.schemas import ActivityCreate
from bali_common.auth import Role, issue_dev_token
from bali_common.settings import CommonSettings
from bali_devkit.broker import EmbeddedBroker, free_port
from support import (
    Child,
    load_average,
    machine,
    median,
    running,
    stop_cleanly_on_sigterm,
)

BENCH = Path(__file__).resolve().parent
CONNECTIONS = (16, 64)
#: The title in the template body, replaced per request by the Lua script.
TITLE_MARK = "@@TITLE@@"
#: `--ceiling`'s third server: the bare app writing the service's rows (`--same-writes`).
CEILING = "bare-same-writes"
#: The member whose focal point posts: the documented example names it lead (ID, Indonesia).
MEMBER = "ID"

LUA = r"""
-- POST a valid activity with a unique title; count answers that are not 2xx.
local head = [==[%(head)s]==]
local tail = [==[%(tail)s]==]
local threads = {}

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"

function setup(thread)
  thread:set("thread_number", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  sent = 0
  non2xx = 0
  first_refusal = ""
end

function request()
  sent = sent + 1
  local title = "Bench activity " .. thread_number .. "-" .. sent
  return wrk.format(nil, nil, nil, head .. title .. tail)
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if first_refusal == "" then
      first_refusal = status .. " " .. string.gsub(string.sub(body or "", 1, 300), "%%s+", " ")
    end
  end
end

function done(summary, latency, requests)
  local refused, sample = 0, ""
  for _, thread in ipairs(threads) do
    refused = refused + thread:get("non2xx")
    if sample == "" then sample = thread:get("first_refusal") or "" end
  end
  local errors = summary.errors
  io.write(string.format(
    "BENCH-RESULT %%d %%d %%d %%d %%.0f %%.0f %%.0f\n",
    summary.requests, summary.duration, refused,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
  io.write("BENCH-REFUSAL " .. sample .. "\n")
end
"""


@dataclass(frozen=True)
class Load:
    """One wrk run: 2xx req/s, latency percentiles of all answers (ms), the server's CPU."""

    connections: int
    seconds: float
    ok_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    answers: int
    non2xx: int
    socket_errors: int
    refusal: str
    load_average: str
    #: Cores the server used over the load: its main (event loop) thread, and all its threads.
    loop_cores: float
    process_cores: float

    @property
    def cpu_ms_per_answer(self) -> float:
        return 1000 * self.process_cores * self.seconds / max(1, self.answers)


def wrk_script(token: str) -> str:
    example = ActivityCreate.model_config.get("json_schema_extra", {})["examples"][0]  # type: ignore[index]
    ActivityCreate.model_validate(example)
    body = json.dumps({**example, "title": TITLE_MARK}, separators=(",", ":"))
    head, tail = body.split(f'"{TITLE_MARK}"')
    return LUA % {"head": head + '"', "tail": '"' + tail, "token": token}


def thread_ticks(pid: int) -> tuple[int, int]:
    """CPU clock ticks (user + system) of the main thread and of every thread of `pid`."""
    main = total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks = int(fields[11]) + int(fields[12])
        total += ticks
        if task.name == str(pid):
            main = ticks
    return main, total


def run_wrk(url: str, script: Path, connections: int, seconds: float, pid: int) -> Load:
    loadavg = load_average()
    duration = max(1, round(seconds))
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    main_before, total_before = thread_ticks(pid)
    started = time.monotonic()
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    elapsed = time.monotonic() - started
    main_after, total_after = thread_ticks(pid)
    tick = os.sysconf("SC_CLK_TCK")
    matched = re.search(r"^BENCH-RESULT (.+)$", output, re.M)
    if matched is None:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    answers, duration_us, non2xx, socket_errors, p50, p99, slowest = (
        float(v) for v in matched[1].split()
    )
    refusal = re.search(r"^BENCH-REFUSAL ?(.*)$", output, re.M)
    return Load(
        connections=connections,
        seconds=duration_us / 1e6,
        ok_per_s=(answers - non2xx) / (duration_us / 1e6),
        p50_ms=p50 / 1000,
        p99_ms=p99 / 1000,
        max_ms=slowest / 1000,
        answers=int(answers),
        non2xx=int(non2xx),
        socket_errors=int(socket_errors),
        refusal=refusal[1] if refusal else "",
        load_average=loadavg,
        loop_cores=(main_after - main_before) / tick / elapsed,
        process_cores=(total_after - total_before) / tick / elapsed,
    )


async def _wait_answering(url: str, child: Child, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if not child.running():
                raise RuntimeError(f"{child.name} exited:\n{child.tail()}")
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{child.name} did not answer {url}:\n{child.tail()}")


class Target:
    """How to start one of the two servers in a fresh directory."""

    def __init__(self, name: str, broker: str, workdir: Path) -> None:
        self.name = name
        self.broker = broker
        self.workdir = workdir

    def start(self, run: int) -> tuple[Child, str, str]:
        """Returns the child, its base URL and a token its auth accepts."""
        directory = self.workdir / f"{self.name}-{run}"
        directory.mkdir()
        port = free_port()
        token = issue_dev_token(
            CommonSettings(data_dir=directory),
            subject=f"bench-{MEMBER}",
            member_id=MEMBER,
            roles=[Role.member],
        )
        if self.name in ("bare", CEILING):
            argv = [
                sys.executable,
                str(BENCH / "bare_app.py"),
                "--port",
                str(port),
                "--database",
                str(directory / "bare.db"),
                *(["--same-writes"] if self.name == CEILING else []),
            ]
            child = Child(self.name, argv, log=directory / "server.log")
            ready = "/healthz"
        else:
            env = {
                "BALI_DATA_DIR": str(directory),
                "BALI_HOST": "127.0.0.1",
                "BALI_PORT": str(port),
                "BALI_KAFKA_BOOTSTRAP_SERVERS": self.broker,
                "BALI_KAFKA_TOPIC_PREFIX": f"run{run}.",
                # One member posts thousands a second: the per-member limit would answer 429.
                "BALI_RATE_LIMIT_ENABLED": "false",
            }
            # The service refuses to start on a database without its schema version.
            subprocess.run(
                [sys.executable, "-m", "bali_activities", "migrate"],
                env={**os.environ, **env},
                check=True,
                capture_output=True,
            )
            argv = [sys.executable, "-m", "bali_activities"]
            child = Child(self.name, argv, log=directory / "server.log", env=env)
            ready = "/readyz"
        base = f"http://127.0.0.1:{port}"
        try:
            asyncio.run(_wait_answering(base + ready, child))
        except BaseException:
            child.stop()
            raise
        return child, base, token


def measure(target: Target, run: int, seconds: float, warmup: float) -> list[Load]:
    child, base, token = target.start(run)
    with running(child):
        script = target.workdir / f"{target.name}-{run}.lua"
        script.write_text(wrk_script(token))
        url = f"{base}/v1/activities"
        warm = run_wrk(url, script, CONNECTIONS[0], warmup, child.pid)
        if warm.non2xx:
            raise RuntimeError(f"{target.name} refuses the benchmark request: {warm.refusal}")
        return [run_wrk(url, script, c, seconds, child.pid) for c in CONNECTIONS]


def profile(target: Target, seconds: float, warmup: float, output: Path) -> None:
    """py-spy on the service under a 64-connection load; prints the summary of `output`."""
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        raise SystemExit(
            "py-spy is missing: uv run --frozen --with py-spy python bench/post.py --profile FILE"
        )
    child, base, token = target.start(0)
    with running(child):
        script = target.workdir / "profile.lua"
        script.write_text(wrk_script(token))
        url = f"{base}/v1/activities"
        run_wrk(url, script, CONNECTIONS[0], warmup, child.pid)
        rate = 200
        recorder = subprocess.Popen(
            [
                py_spy,
                "record",
                "--pid",
                str(child.pid),
                "--duration",
                str(max(1, round(seconds))),
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--threads",
                "--nonblocking",
                "--gil",
                "--full-filenames",
                "--output",
                str(output),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            time.sleep(0.5)
            loaded = run_wrk(url, script, CONNECTIONS[1], seconds, child.pid)
            _, errors = recorder.communicate(timeout=seconds + 60)
        finally:
            if recorder.poll() is None:
                recorder.kill()
                recorder.wait()
    if recorder.returncode != 0:
        raise RuntimeError(f"py-spy failed: {errors.decode(errors='replace')}")
    print(
        f"\nprofile of {target.name} under {loaded.connections} connections "
        f"({loaded.ok_per_s:,.0f} req/s while sampled at {rate}/s; the service used "
        f"{loaded.process_cores:.2f} cores, its event loop thread {loaded.loop_cores:.2f}): "
        f"{output}"
    )
    print_profile(output, rate=rate, seconds=seconds)


#: Where a sample's time goes, by the file of its innermost frame that matches (first match wins
#: per frame; frames of generic standard-library modules hand the sample to their caller).
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "driver (aiosqlite thread, sqlite3, greenlet bridge)",
        (
            "aiosqlite/",
            "sqlite3/",
            "sqlalchemy/dialects/",
            "sqlalchemy/connectors/",
            "sqlalchemy/util/concurrency",
            "sqlalchemy/util/_concurrency",
        ),
    ),
    ("ORM: objects, session, flush", ("sqlalchemy/orm/", "sqlmodel/")),
    ("SQL: compile and execute (SQLAlchemy Core)", ("sqlalchemy/",)),
    ("validation (pydantic, FastAPI body parsing)", ("pydantic", "fastapi/dependencies/")),
    ("JSON", ("json/", "orjson")),
    ("auth (JWT verify)", ("jwt/", "cryptography/", "bali_common/auth")),
    ("tracing and metrics", ("opentelemetry/", "prometheus_client/", "bali_common/telemetry")),
    (
        "middleware (Starlette, BaseHTTPMiddleware, anyio)",
        ("starlette/", "fastapi/", "anyio/", "bali_common/metrics", "bali_common/runtime"),
    ),
    ("outbox relay, Kafka client", ("aiokafka/", "bali_common/messaging/")),
    ("service code (use case, idempotency, audit)", ("bali_activities/", "bali_common/")),
    ("HTTP server (uvicorn, httptools)", ("uvicorn/", "httptools")),
    (
        "event loop and threads (asyncio, uvloop)",
        ("asyncio/", "uvloop", "selectors", "threading", "queue", "concurrent/"),
    ),
)
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _parse(line: str) -> tuple[str, list[tuple[str, str]], int] | None:
    """A raw py-spy line: its thread's name, its frames (outermost first), its sample count."""
    stack, _, count = line.rpartition(" ")
    if not stack or not count.isdigit():
        return None
    thread, frames = "", []
    for text in stack.split(";"):
        if text.startswith("thread ("):
            thread = text.split(": ", 1)[-1]
            continue
        matched = _FRAME.match(text)
        if matched:
            frames.append((matched["function"], matched["file"]))
    return _thread_kind(thread, frames), frames, int(count)


def _thread_kind(name: str, frames: list[tuple[str, str]]) -> str:
    if name == "MainThread":
        return "main thread (event loop)"
    if any("aiosqlite/" in file for _, file in frames):
        return "aiosqlite connection thread"
    if name.startswith("AnyIO worker"):
        return "AnyIO worker threads (the thread pool)"
    return "other threads"


def _category(file: str) -> str | None:
    for name, patterns in CATEGORIES:
        if any(pattern in file for pattern in patterns):
            return name
    return None


def _short(function: str, file: str) -> str:
    """The function and its file from the package on: `Session.commit (sqlalchemy/orm/...)`."""
    for marker in ("site-packages/", "/src/"):
        if marker in file:
            return f"{function} ({file.rsplit(marker, 1)[1]})"
    return f"{function} ({re.sub(r'^.*/lib/python3[.0-9]*/', '', file)})"


def print_profile(path: Path, *, rate: int, seconds: float, top: int = 15) -> None:
    """Shares of all samples: by thread, by group, by function (own and cumulative)."""
    own: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    groups: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        parsed = _parse(line)
        if parsed is None or not parsed[1]:
            continue
        thread, frames, count = parsed
        threads[thread] += count
        own[_short(*frames[-1])] += count
        for key in {_short(*frame) for frame in frames}:
            cumulative[key] += count
        categories = (_category(file) for _, file in reversed(frames))
        groups[next((c for c in categories if c), "other (standard library)")] += count
    total = sum(threads.values())
    if not total:
        print("no samples")
        return

    def share(count: int) -> str:
        return f"{100 * count / total:5.1f} %"

    print(f"{total} samples in {seconds:.0f} s at {rate}/s: {total / (rate * seconds):.2f} cores")
    print("\nby thread:")
    for thread, count in threads.most_common():
        print(f"  {share(count)}  {thread}")
    print("\nby group (the innermost frame that belongs to one):")
    for group, count in groups.most_common():
        print(f"  {share(count)}  {group}")
    print(f"\ntop {top} functions by own time:")
    for key, count in own.most_common(top):
        print(f"  {share(count)}  {key}")
    print(
        f"\ntop {top} of the project's functions and SQLAlchemy's session methods by cumulative "
        "time (the session's work runs in greenlets, whose stacks start at the session method):"
    )
    shown = [
        (key, n)
        for key, n in cumulative.most_common()
        if _CUMULATIVE_OF.search(key) and not _ENTRY.search(key)
    ]
    for key, count in shown[:top]:
        print(f"  {share(count)}  {key}")


_CUMULATIVE_OF = re.compile(r"\((bali_\w+/|sqlalchemy/orm/session|sqlalchemy/ext/asyncio/)")
_ENTRY = re.compile(r"\((bali_\w+/__main__|bali_common/server)\.py\)")


def print_results(rows: list[tuple[int, Load, Load]]) -> None:
    print(
        "\n| run | conns | bare req/s | service req/s | ratio | bare p50/p99 ms "
        "| service p50/p99 ms | p99 ratio | CPU ms/req bare/service "
        "| loop cores bare/service | non-2xx | load average |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for run, bare, service in rows:
        print(
            f"| {run} | {bare.connections} | {bare.ok_per_s:,.0f} | {service.ok_per_s:,.0f} "
            f"| {service.ok_per_s / bare.ok_per_s:.2f} | {bare.p50_ms:.1f} / {bare.p99_ms:.1f} "
            f"| {service.p50_ms:.1f} / {service.p99_ms:.1f} | {service.p99_ms / bare.p99_ms:.2f} "
            f"| {bare.cpu_ms_per_answer:.2f} / {service.cpu_ms_per_answer:.2f} "
            f"| {bare.loop_cores:.2f} / {service.loop_cores:.2f} "
            f"| {bare.non2xx} / {service.non2xx} | {service.load_average} |"
        )
    print("\nmedians of the runs:")
    print(
        "| conns | bare req/s | service req/s | req/s ratio (goal >= 0.7) | bare p99 ms "
        "| service p99 ms | p99 ratio (goal <= 1.5) | CPU ms/req bare | CPU ms/req service |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for connections in CONNECTIONS:
        mine = [(b, s) for _, b, s in rows if b.connections == connections]
        print(
            f"| {connections} | {median([b.ok_per_s for b, _ in mine]):,.0f} "
            f"| {median([s.ok_per_s for _, s in mine]):,.0f} "
            f"| {median([s.ok_per_s / b.ok_per_s for b, s in mine]):.2f} "
            f"| {median([b.p99_ms for b, _ in mine]):.1f} "
            f"| {median([s.p99_ms for _, s in mine]):.1f} "
            f"| {median([s.p99_ms / b.p99_ms for b, s in mine]):.2f} "
            f"| {median([b.cpu_ms_per_answer for b, _ in mine]):.2f} "
            f"| {median([s.cpu_ms_per_answer for _, s in mine]):.2f} |"
        )
    refused = [(s.non2xx, s.refusal) for _, _, s in rows if s.non2xx] + [
        (b.non2xx, b.refusal) for _, b, _ in rows if b.non2xx
    ]
    errors = sum(b.socket_errors + s.socket_errors for _, b, s in rows)
    if refused:
        print(f"\nnon-2xx answers in {len(refused)} loads; first: {refused[0][1]}")
    if errors:
        print(f"socket errors (connect, read, write, timeout): {errors}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0, help="each measured load")
    parser.add_argument("--warmup", type=float, default=2.0, help="before the measured loads")
    parser.add_argument("--quick", action="store_true", help="4 s loads, 1 s warm-up")
    parser.add_argument("--profile", type=Path, help="py-spy raw stacks go here (see above)")
    parser.add_argument(
        "--ceiling",
        action="store_true",
        help="also the bare app writing the service's rows, against the bare app (see above)",
    )
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.warmup = 4.0, 1.0
    if shutil.which("wrk") is None:
        print("wrk is missing: install it with `apt-get install -y wrk` (Debian, Ubuntu)")
        return 2
    stop_cleanly_on_sigterm()
    print(f"{machine()}; load average at start {load_average()}")
    print(f"wrk 1 thread, {args.seconds:.0f} s per load after {args.warmup:.0f} s warm-up")
    rows: list[tuple[int, Load, Load]] = []
    ceiling_rows: list[tuple[int, Load, Load]] = []
    with tempfile.TemporaryDirectory(prefix="bench-post-") as workdir, EmbeddedBroker() as broker:
        bare = Target("bare", broker.bootstrap_servers, Path(workdir))
        service = Target("activities", broker.bootstrap_servers, Path(workdir))
        ceiling = Target(CEILING, broker.bootstrap_servers, Path(workdir))
        for run in range(1, args.runs + 1):
            bare_loads = measure(bare, run, args.seconds, args.warmup)
            if args.ceiling:
                for b, c in zip(
                    bare_loads, measure(ceiling, run, args.seconds, args.warmup), strict=True
                ):
                    ceiling_rows.append((run, b, c))
                    print(
                        f"run {run}, {b.connections} connections: bare {b.ok_per_s:,.0f} req/s, "
                        f"bare writing the service's rows {c.ok_per_s:,.0f} req/s "
                        f"p99 {c.p99_ms:.1f} ms ({c.ok_per_s / b.ok_per_s:.2f}x)",
                        flush=True,
                    )
            service_loads = measure(service, run, args.seconds, args.warmup)
            for b, s in zip(bare_loads, service_loads, strict=True):
                rows.append((run, b, s))
                print(
                    f"run {run}, {b.connections} connections: bare {b.ok_per_s:,.0f} req/s "
                    f"p99 {b.p99_ms:.1f} ms, service {s.ok_per_s:,.0f} req/s "
                    f"p99 {s.p99_ms:.1f} ms (non-2xx {b.non2xx}/{s.non2xx}, "
                    f"load average {s.load_average})",
                    flush=True,
                )
        if rows:
            print_results(rows)
        if ceiling_rows:
            print("\nthe ceiling: the bare app writing the service's rows, against the bare app")
            print_results(ceiling_rows)
        if args.profile is not None:
            profile(service, args.seconds, args.warmup, args.profile)
    print(f"\nload average at the end {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
