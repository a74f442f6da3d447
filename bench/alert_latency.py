"""Alert raised -> signed webhook received, and -> email accepted, on the whole platform.

`bali up` (through `RunningPlatform`, with the settings `make up` runs with) in a temporary
directory, plus a real HTTP receiver (uvicorn, in its own thread) registered through the
notifications API as a webhook subscription to `alert.raised`, its loopback origin on the
allow-list. It verifies each Standard Webhooks signature. Alerts are raised one at a time
through the consultation API; each is timed from its 201 (the clock read when the answer is
in) to the moment the receiver has the verified webhook, and to the moment the platform's
SMTP mail drop wrote the first email for it (the .eml file's modification time, written
before the server answers 250: `bali up` offers no way to point the services at another
SMTP server; the kernel's file clock has a granularity of one tick, 4 ms at most). Both
clocks are the wall clock of this machine. Then the next alert, after a short pause.

Each run raises N alerts idle, then N while a background thread writes activities through
the activities API at a steady rate (open loop, 50/s by default, started a few seconds
before). Prints p50/p99/max per run and phase, then the medians over the runs.
Run: `make bench`, or `uv run --frozen python bench/alert_latency.py [--quick]`.
"""

from __future__ import annotations

import argparse
import asyncio
import email.parser
import email.policy
import json
import re
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import uvicorn
from bali_activities.activities.schemas import ActivityCreate
from bali_common.auth import Role
from bali_devkit.broker import free_port
from bali_devkit.testing.platform import RunningPlatform
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from support import (
    load_average,
    machine,
    make_up_env,
    median,
    percentile,
    stop_cleanly_on_sigterm,
)

#: The member raising alerts, and the one whose focal point writes the background activities.
RAISER = "TH"
WRITER = "ID"
#: The subject of an alert email ("[SEVERE] Alert raised: <title>").
_ALERT_RAISED = re.compile(r"Alert raised: (?P<title>.+)$")


class WebhookReceiver:
    """A real HTTP server verifying Standard Webhooks signatures; notes when each alert came."""

    def __init__(self) -> None:
        self.port = free_port()
        self.secret: str | None = None
        self.arrived: dict[str, float] = {}
        self.refused = 0
        self._server = uvicorn.Server(
            uvicorn.Config(
                self,
                host="127.0.0.1",
                port=self.port,
                loop="uvloop",
                http="httptools",
                lifespan="off",
                access_log=False,
                log_level="warning",
            )
        )
        self._thread = threading.Thread(target=self._server.run, name="receiver", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/alerts"

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the webhook receiver did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(10)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        arrived = time.time()
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        status = 204
        try:
            payload = Webhook(self.secret or "").verify(body, headers)
        except (WebhookVerificationError, ValueError):
            self.refused += 1
            status = 400
        else:
            if payload.get("type") == "alert.raised":
                self.arrived.setdefault(str(payload["data"]["alert"]["alert_id"]), arrived)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


class MailWatch:
    """The first mail-drop file per alert title, by its modification time."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.first: dict[str, float] = {}
        self.count: Counter[str] = Counter()
        self._seen: set[str] = set()
        self._parser = email.parser.BytesHeaderParser(policy=email.policy.default)

    def scan(self) -> None:
        for path in self.directory.glob("*.eml"):
            if path.name in self._seen:
                continue
            written = path.stat().st_mtime_ns / 1e9
            data = path.read_bytes()
            if b"\n\n" not in data.replace(b"\r\n", b"\n"):
                # Caught while the mail drop is still writing its headers: read it again at
                # the next scan (marked seen, a half-written subject would never match).
                continue
            subject = str(self._parser.parsebytes(data)["subject"] or "")
            self._seen.add(path.name)
            matched = _ALERT_RAISED.search(subject)
            if matched is not None:
                title = matched["title"]
                self.count[title] += 1
                self.first[title] = min(written, self.first.get(title, written))


@dataclass
class SteadyWrites:
    """Activities written at a fixed rate from a thread of its own (open loop)."""

    url: str
    headers: dict[str, str]
    rate: float
    accepted: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    started: float = 0.0
    stopped: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="writes")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)

    @property
    def achieved(self) -> float:
        return self.accepted / max(1e-9, self.stopped - self.started)

    async def _run(self) -> None:
        example = ActivityCreate.model_config.get("json_schema_extra", {})["examples"][0]  # type: ignore[index]
        pending: set[asyncio.Task[None]] = set()
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            loop = asyncio.get_running_loop()
            self.started = next_at = loop.time()
            number = 0
            while not self._stop.is_set():
                number += 1
                body = {**example, "title": f"Background activity {number}"}
                task = asyncio.create_task(self._post(client, body))
                pending.add(task)
                task.add_done_callback(pending.discard)
                next_at += 1 / self.rate
                await asyncio.sleep(max(0.0, next_at - loop.time()))
            self.stopped = loop.time()
            await asyncio.gather(*pending)

    async def _post(self, client: httpx.AsyncClient, body: dict[str, Any]) -> None:
        try:
            response = await client.post(self.url, json=body, headers=self.headers)
        except httpx.HTTPError as error:
            self.refused[type(error).__name__] += 1
            return
        if response.status_code == 201:
            self.accepted += 1
        else:
            self.refused[str(response.status_code)] += 1


@dataclass
class Phase:
    run: int
    name: str
    webhook_ms: list[float]
    email_ms: list[float]
    raise_ms: list[float]
    load_average: str
    note: str = ""

    def line(self) -> str:
        def stats(values: list[float]) -> str:
            return (
                f"{percentile(values, 50):.0f} / {percentile(values, 99):.0f} / "
                f"{max(values, default=float('nan')):.0f}"
            )

        return (
            f"| {self.run} | {self.name} | {stats(self.webhook_ms)} | {stats(self.email_ms)} "
            f"| {percentile(self.raise_ms, 50):.0f} | {self.note} | {self.load_average} |"
        )


async def raise_alerts(
    platform: RunningPlatform,
    receiver: WebhookReceiver,
    mail: MailWatch,
    *,
    run: int,
    phase: str,
    count: int,
    pause: float,
) -> Phase:
    url = f"{platform.url('consultation')}/v1/alerts"
    headers = platform.token(RAISER, Role.member)
    result = Phase(run, phase, [], [], [], load_average())
    async with httpx.AsyncClient(timeout=30) as client:
        for number in range(1, count + 1):
            title = f"Latency alert {run}-{phase}-{number}"
            body = {
                "situation_type": "maritime_distress",
                "title": title,
                "description": "Raised by the alert latency benchmark.",
                "severity": "Severe",
                "urgency": "Immediate",
                "certainty": "Observed",
                "affected_members": ["ID"],
                "location": {"place_names": ["Timor Sea"]},
                "sensitivity": "public",
                "dedup_key": f"latency-{uuid4().hex}",
            }
            sent = time.time()
            response = await client.post(url, json=body, headers=headers)
            raised = time.time()
            if response.status_code != 201:
                raise RuntimeError(f"raising an alert: {response.status_code} {response.text}")
            alert_id = str(response.json()["id"])
            deadline = time.monotonic() + 30
            while alert_id not in receiver.arrived or title not in mail.first:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"alert {title!r} not delivered within 30 s: webhook "
                        f"{'in' if alert_id in receiver.arrived else 'missing'} "
                        f"({len(receiver.arrived)} received, {receiver.refused} refused), "
                        f"email {'in' if title in mail.first else 'missing'} "
                        f"(alert emails so far: {sorted(mail.count)[:5]})"
                    )
                await asyncio.sleep(0.005)
                mail.scan()
            result.raise_ms.append(1000 * (raised - sent))
            result.webhook_ms.append(1000 * (receiver.arrived[alert_id] - raised))
            result.email_ms.append(1000 * (mail.first[title] - raised))
            await asyncio.sleep(pause)
    return result


async def measure(
    platform: RunningPlatform, receiver: WebhookReceiver, args: argparse.Namespace
) -> list[Phase]:
    subscriber = platform.token(RAISER, Role.member)
    async with httpx.AsyncClient(timeout=30) as client:
        created = await client.post(
            f"{platform.url('notifications')}/v1/subscriptions",
            json={
                "name": "alert latency benchmark",
                "channel": "webhook",
                "url": receiver.url,
                "event_types": ["alert.raised"],
            },
            headers=subscriber,
        )
    if created.status_code != 201:
        raise RuntimeError(f"subscribing: {created.status_code} {created.text}")
    receiver.secret = created.json()["secret"]
    mail = MailWatch(platform.mail_directory)
    phases: list[Phase] = []
    # Two alerts first, not measured: connections and caches warm up as they do in use.
    await raise_alerts(platform, receiver, mail, run=0, phase="warm-up", count=2, pause=0.2)
    for run in range(1, args.runs + 1):
        idle = await raise_alerts(
            platform, receiver, mail, run=run, phase="idle", count=args.alerts, pause=args.pause
        )
        phases.append(idle)
        print(idle.line(), flush=True)
        writes = SteadyWrites(
            url=f"{platform.url('activities')}/v1/activities",
            headers=platform.token(WRITER, Role.member),
            rate=args.rate,
        )
        writes.start()
        try:
            await asyncio.sleep(args.settle)
            loaded = await raise_alerts(
                platform,
                receiver,
                mail,
                run=run,
                phase=f"{args.rate:.0f} writes/s",
                count=args.alerts,
                pause=args.pause,
            )
        finally:
            writes.stop()
        refused = ", ".join(f"{n}x {k}" for k, n in writes.refused.items()) or "none refused"
        loaded.note = f"{writes.achieved:.0f} activities/s accepted, {refused}"
        phases.append(loaded)
        print(loaded.line(), flush=True)
        await platform.quiescent(timeout=180)
    if receiver.refused:
        print(f"webhooks refused by the receiver (bad signature): {receiver.refused}")
    return phases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--alerts", type=int, default=20, help="per run and phase")
    parser.add_argument("--rate", type=float, default=50.0, help="background activities/s")
    parser.add_argument("--pause", type=float, default=0.1, help="between two alerts, s")
    parser.add_argument("--settle", type=float, default=3.0, help="background writes first, s")
    parser.add_argument("--quick", action="store_true", help="10 alerts per phase")
    args = parser.parse_args()
    if args.quick:
        args.alerts, args.settle = 10, 2.0
    stop_cleanly_on_sigterm()
    print(f"{machine()}; load average at start {load_average()}")
    receiver = WebhookReceiver()
    with tempfile.TemporaryDirectory(prefix="bench-alerts-") as workdir:
        env = {
            **make_up_env(),
            "BALI_WEBHOOK_ALLOW_LIST": json.dumps([f"127.0.0.1:{receiver.port}"]),
            # The background writes come from one address at 50/s: the per-address (20/s) and
            # per-member (10/s) limits answered 429 from the second run on, so the "under
            # writes" phase ran with almost no writes.
            "BALI_RATE_LIMIT_ENABLED": "false",
        }
        platform = RunningPlatform(Path(workdir) / "platform", env=env)
        try:
            receiver.start()
            started = platform.start()
            asyncio.run(platform.quiescent(timeout=180))
            print(f"bali up ready in {started:.1f} s; {args.alerts} alerts per run and phase")
            print(
                "\n| run | phase | webhook ms p50 / p99 / max | first email ms p50 / p99 / max "
                "| raise (201) ms p50 | background | load average |"
            )
            print("|---|---|---|---|---|---|---|")
            phases = asyncio.run(measure(platform, receiver, args))
        finally:
            platform.stop()
            receiver.stop()
    print("\nmedians over the runs (goal: webhook p99 <= 50 ms idle, <= 150 ms under writes):")
    print("| phase | webhook p50 ms | webhook p99 ms | first email p50 ms | first email p99 ms |")
    print("|---|---|---|---|---|")
    for name in dict.fromkeys(p.name for p in phases):
        mine = [p for p in phases if p.name == name]
        print(
            f"| {name} | {median([percentile(p.webhook_ms, 50) for p in mine]):.0f} "
            f"| {median([percentile(p.webhook_ms, 99) for p in mine]):.0f} "
            f"| {median([percentile(p.email_ms, 50) for p in mine]):.0f} "
            f"| {median([percentile(p.email_ms, 99) for p in mine]):.0f} |"
        )
    print(f"load average at the end {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
