"""The whole platform under `bali up`, driven as an operator would, with the counts to reconcile.

`RunningPlatform` starts `bali up` as a child process, finds its service and broker processes
to signal them, and waits for quiescence (every outbox empty, every consumer caught up).
`WriteLoad` writes activities and raises alerts through the public APIs at a steady pace and
remembers what was accepted. `reconcile` then checks every count end to end: each accepted
write readable, reporting's tallies equal to the writes, exactly one email per co-chair focal
point per alert. The fault suites and the recovery benchmark share it.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
from bali_common.auth import Role, issue_dev_token
from bali_common.settings import CommonSettings

from bali_devkit.broker import free_port

SERVICES = ("activities", "consultation", "notifications", "reporting")
#: The co-chairs' focal points in the reference directory: every raised alert reaches both.
CO_CHAIR_FOCAL_POINTS = ("focal.point@au.example", "focal.point@id.example")
#: Short group timeouts, so that restarted consumers rejoin in seconds on the embedded broker.
FAST_GROUPS = {
    "BALI_KAFKA_SESSION_TIMEOUT_MS": "6000",
    "BALI_KAFKA_HEARTBEAT_INTERVAL_MS": "300",
    "BALI_KAFKA_REBALANCE_TIMEOUT_MS": "3000",
    "BALI_KAFKA_FETCH_MAX_WAIT_MS": "10",
    "BALI_OUTBOX_POLL_INTERVAL_S": "0.2",
    "BALI_BROKER_CHECK_INTERVAL_S": "0.5",
    "BALI_CONSUMER_COMMIT_TIMEOUT_S": "5",
}
_ALERT_SUBJECT = re.compile(r"Alert raised: (?P<title>.+)$")


class PlatformError(AssertionError):
    pass


class RunningPlatform:
    """`bali up` in a data directory of its own, on free ports."""

    def __init__(self, data_dir: Path, *, env: Mapping[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.ports = {name: free_port() for name in (*SERVICES, "broker", "smtp")}
        self.log_path = data_dir / "up.log"
        self._env = {**os.environ, **FAST_GROUPS, **(env or {})}
        self._process: subprocess.Popen[bytes] | None = None
        self.settings = CommonSettings(data_dir=data_dir)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def token(self, member: str | None, *roles: Role) -> dict[str, str]:
        token = issue_dev_token(
            self.settings,
            subject=f"load-{member or 'admin'}-{'-'.join(r.value for r in roles)}",
            member_id=member,
            roles=list(roles) or [Role.member],
        )
        return {"Authorization": f"Bearer {token}"}

    @property
    def mail_directory(self) -> Path:
        return self.data_dir / "mail"

    def start(self, *, timeout: float = 120.0) -> float:
        """Start `bali up`; returns the seconds until every service was ready."""
        started = time.monotonic()
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        command = [
            str(Path(sys.executable).parent / "bali"),
            "up",
            "--data-dir",
            str(self.data_dir),
            *[arg for name in SERVICES for arg in (f"--{name}-port", str(self.ports[name]))],
            "--broker-port",
            str(self.ports["broker"]),
            "--smtp-port",
            str(self.ports["smtp"]),
        ]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=self._env
            )
        deadline = started + timeout
        while "Press Ctrl-C to stop." not in self._log_since(offset):
            if self._process.poll() is not None:
                raise PlatformError(f"bali up exited early:\n{self._log_since(offset)}")
            if time.monotonic() > deadline:
                raise PlatformError(f"bali up did not come up:\n{self._log_since(offset)}")
            time.sleep(0.2)
        asyncio.run(self.wait_ready(timeout=deadline - time.monotonic()))
        return time.monotonic() - started

    def interrupt(self, *, timeout: float = 180.0) -> int:
        """Ctrl-C, as an operator stops it; returns the exit code."""
        process = self._require_process()
        process.send_signal(signal.SIGINT)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired as error:
            process.kill()
            raise PlatformError(f"bali up did not stop within {timeout}s") from error

    def stop(self) -> None:
        """Whatever state it is in (used on test teardown)."""
        if self._process is None or self._process.poll() is not None:
            return
        for pid in self.children().values():
            _signal(pid, signal.SIGCONT)
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(120)
        except subprocess.TimeoutExpired:
            self._process.kill()
            for pid in self.children().values():
                _signal(pid, signal.SIGKILL)

    def children(self) -> dict[str, int]:
        """The supervisor's children by name: the four services and `broker`."""
        parent = self._require_process().pid
        found: dict[str, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) != parent:
                continue
            name = _child_name(cmdline)
            if name is not None:
                found[name] = int(entry.name)
        return found

    def signal(self, name: str, signum: signal.Signals) -> int:
        pid = self.children()[name]
        _signal(pid, signum)
        return pid

    async def wait_back(self, name: str, old_pid: int, *, timeout: float = 60.0) -> float:
        """Seconds until `name` runs again under a new pid and answers (its readiness for a
        service, the broker's port for the broker)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            pid = self.children().get(name)
            if pid is not None and pid != old_pid and await self._answers(name):
                return time.monotonic() - started
            await asyncio.sleep(0.1)
        raise PlatformError(f"{name} did not come back within {timeout}s:\n{self._log_tail()}")

    async def _answers(self, name: str) -> bool:
        if name == "broker":
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.ports["broker"])
            except OSError:
                return False
            writer.close()
            return True
        return await self._ready(name, need_broker=False)

    async def wait_ready(self, *, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        for name in SERVICES:
            while not await self._ready(name, need_broker=True):
                if time.monotonic() > deadline:
                    raise PlatformError(f"{name} not ready:\n{self._log_tail()}")
                await asyncio.sleep(0.2)

    async def _ready(self, name: str, *, need_broker: bool) -> bool:
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                response = await client.get(f"{self.url(name)}/readyz")
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and (
            not need_broker or response.json()["checks"].get("broker") == "ok"
        )

    async def quiescent(self, *, timeout: float = 120.0, settle: float = 2.0) -> float:
        """Seconds until every outbox is empty and every consumer caught up, for `settle` s."""
        started = time.monotonic()
        held_since: float | None = None
        while time.monotonic() - started < timeout:
            if await self._all_drained():
                held_since = held_since or time.monotonic()
                if time.monotonic() - held_since >= settle:
                    return held_since - started
            else:
                held_since = None
            await asyncio.sleep(0.2)
        raise PlatformError(f"no quiescence within {timeout}s:\n{self._log_tail()}")

    async def _all_drained(self) -> bool:
        async with httpx.AsyncClient(timeout=2) as client:
            for name in SERVICES:
                try:
                    scraped = (await client.get(f"{self.url(name)}/metrics")).text
                except httpx.HTTPError:
                    return False
                if not _drained(scraped, consumes=name != "activities"):
                    return False
        return True

    def _require_process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise PlatformError("bali up was not started")
        return self._process

    def _log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def _log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _child_name(cmdline: list[bytes]) -> str | None:
    text = [part.decode(errors="replace") for part in cmdline]
    if "-m" in text:
        module = text[text.index("-m") + 1]
        if module.startswith("bali_") and module[5:] in SERVICES:
            return module[5:]
    if text and "tansu" in Path(text[0]).name:
        return "broker"
    return None


def _signal(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _drained(scraped: str, *, consumes: bool) -> bool:
    """Backlog 0, and for a consuming service lag series present and all 0."""
    backlog = [float(v) for v in re.findall(r"^bali_outbox_backlog (\S+)$", scraped, re.M)]
    lags = [float(v) for v in re.findall(r"^bali_consumer_lag\{[^}]*\} (\S+)$", scraped, re.M)]
    if backlog != [0.0]:
        return False
    return not consumes or (bool(lags) and all(lag == 0 for lag in lags))


@dataclass
class WriteLoad:
    """Activity writes and alert raises through the public APIs, remembered when accepted."""

    platform: RunningPlatform
    #: Requests per second, one alert for every `alert_every` requests.
    rate: float = 20.0
    alert_every: int = 5
    activities: list[str] = field(default_factory=list)
    #: Accepted alerts: id -> title (titles are unique: emails are matched by them).
    alerts: dict[str, str] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    _sequence: itertools.count[int] = field(default_factory=itertools.count)

    async def run(self, stop: asyncio.Event) -> None:
        writers = ("TH", "MY", "PH", "VN")
        tokens = {member: self.platform.token(member, Role.member) for member in writers}
        async with httpx.AsyncClient(timeout=10) as client:
            while not stop.is_set():
                number = next(self._sequence)
                member = writers[number % len(writers)]
                if number % self.alert_every == 0:
                    await self._raise_alert(client, tokens[member], number)
                else:
                    await self._write_activity(client, tokens[member], member, number)
                await asyncio.sleep(1 / self.rate)

    async def for_seconds(self, seconds: float) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(self.run(stop))
        await asyncio.sleep(seconds)
        stop.set()
        await task

    async def _write_activity(
        self, client: httpx.AsyncClient, headers: dict[str, str], member: str, number: int
    ) -> None:
        start = date.today() - timedelta(days=30)
        body: dict[str, Any] = {
            "title": f"Load activity {number}",
            "description": "Written by the steady load of a fault run.",
            "items": [1 + number % 25],
            "type": "workshop",
            "status": "completed",
            "planned_start": start.isoformat(),
            "planned_end": (start + timedelta(days=1)).isoformat(),
            "countries": [member],
        }
        created = await self._post(
            client, f"{self.platform.url('activities')}/v1/activities", body, headers
        )
        if created is not None:
            self.activities.append(str(created["id"]))

    async def _raise_alert(
        self, client: httpx.AsyncClient, headers: dict[str, str], number: int
    ) -> None:
        title = f"Load alert {number}"
        body: dict[str, Any] = {
            "situation_type": "maritime_distress",
            "title": title,
            "description": "Raised by the steady load of a fault run.",
            "severity": "Severe",
            "urgency": "Immediate",
            "certainty": "Observed",
            "affected_members": ["ID"],
            "location": {"place_names": ["Timor Sea"]},
            "sensitivity": "public",
            "dedup_key": f"load-{number}",
        }
        raised = await self._post(
            client, f"{self.platform.url('consultation')}/v1/alerts", body, headers
        )
        if raised is not None:
            self.alerts[str(raised["id"])] = title

    async def _post(
        self, client: httpx.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str]
    ) -> dict[str, Any] | None:
        try:
            response = await client.post(url, json=body, headers=headers)
        except httpx.HTTPError as error:
            self.refused[type(error).__name__] += 1
            return None
        if response.status_code == 201:
            created: dict[str, Any] = response.json()
            return created
        if response.status_code >= 500:
            self.server_errors.append(f"{url} {response.status_code} {response.text[:200]}")
        self.refused[str(response.status_code)] += 1
        return None


@dataclass
class Reconciliation:
    unreadable_activities: list[str]
    unreadable_alerts: list[str]
    reported: Mapping[str, int]
    #: Per accepted alert title, how many emails each co-chair focal point received.
    emails: Mapping[str, Counter[str]]

    def problems(self, load: WriteLoad) -> list[str]:
        found = []
        if self.unreadable_activities:
            found.append(f"activities accepted but unreadable: {self.unreadable_activities[:5]}")
        if self.unreadable_alerts:
            found.append(f"alerts accepted but unreadable: {self.unreadable_alerts[:5]}")
        if self.reported.get("activity.created", 0) != len(load.activities):
            found.append(
                f"reporting counted {self.reported.get('activity.created', 0)} activity.created, "
                f"{len(load.activities)} were accepted"
            )
        if self.reported.get("alert.raised", 0) != len(load.alerts):
            found.append(
                f"reporting counted {self.reported.get('alert.raised', 0)} alert.raised, "
                f"{len(load.alerts)} were accepted"
            )
        for title in load.alerts.values():
            received = self.emails.get(title, Counter())
            for recipient in CO_CHAIR_FOCAL_POINTS:
                if received[recipient] != 1:
                    found.append(f"{recipient} got {received[recipient]} emails for {title!r}")
        if load.server_errors:
            found.append(f"5xx answers: {load.server_errors[:3]}")
        return found


async def reconcile(platform: RunningPlatform, load: WriteLoad) -> Reconciliation:
    admin = platform.token(None, Role.admin)
    ops = platform.token("RSO", Role.ops)
    async with httpx.AsyncClient(timeout=10) as client:
        unreadable_activities = [
            activity_id
            for activity_id in load.activities
            if (
                await client.get(
                    f"{platform.url('activities')}/v1/activities/{activity_id}", headers=admin
                )
            ).status_code
            != 200
        ]
        unreadable_alerts = [
            alert_id
            for alert_id in load.alerts
            if (
                await client.get(
                    f"{platform.url('consultation')}/v1/alerts/{alert_id}", headers=admin
                )
            ).status_code
            != 200
        ]
        tallies = await client.get(
            f"{platform.url('reporting')}/v1/pipeline/event-counts", headers=ops
        )
    reported = {item["event_type"]: item["count"] for item in tallies.json()["items"]}
    return Reconciliation(
        unreadable_activities=unreadable_activities,
        unreadable_alerts=unreadable_alerts,
        reported=reported,
        emails=alert_emails(platform.mail_directory),
    )


def alert_emails(directory: Path) -> dict[str, Counter[str]]:
    """For each alert title, how many "Alert raised" emails each address received."""
    received: dict[str, Counter[str]] = {}
    for path in sorted(directory.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        matched = _ALERT_SUBJECT.search(str(message["subject"] or ""))
        if matched is None:
            continue
        for address in str(message["to"] or "").split(","):
            received.setdefault(matched["title"], Counter())[address.strip()] += 1
    return received
