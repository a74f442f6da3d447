"""Real crashes (os._exit) of service processes at the worst moments: a relay between publish
and mark-sent, a consumer between its database commit and its offset commit."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from bali_common.auth import Role, issue_dev_token
from bali_common.events import STREAM_TOPICS, CloudEvent, Stream
from bali_common.events.activities import ActivityCreated
from bali_common.messaging.kafka import ensure_topics
from bali_common.settings import CommonSettings
from bali_devkit.broker import free_port
from bali_devkit.testing.plugin import FAST_KAFKA, read_topic

pytestmark = pytest.mark.slow

CONTRACT = Path(__file__).parents[2] / "libs/common/tests/contracts/activity.created.v1.json"


class ServiceProcess:
    """One service as `python -m bali_<name>`, with its environment."""

    def __init__(self, name: str, env: dict[str, str], log: Path) -> None:
        self.name = name
        self.env = env
        self.log = log
        self.port = int(env["BALI_PORT"])
        self.process: subprocess.Popen[bytes] | None = None
        self.migrated = False

    def start(self, *, wait_ready: bool = True, **extra_env: str) -> None:
        if not self.migrated:
            # As an operator starts a service: its database migrated first, by its own command.
            subprocess.run(
                [sys.executable, "-m", f"bali_{self.name}", "migrate"],
                env={**os.environ, **self.env},
                capture_output=True,
                check=True,
            )
            self.migrated = True
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", f"bali_{self.name}"],
                env={**os.environ, **self.env, **extra_env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if not wait_ready:
            return
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.process.poll() is None, self.log.read_text()
            time.sleep(0.1)
        raise AssertionError(f"{self.name} not ready:\n{self.log.read_text()}")

    def wait_for_exit(self, timeout: float = 60) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


def service_env(name: str, kafka_bootstrap: str, directory: Path, prefix: str) -> dict[str, str]:
    env = {f"BALI_{key.upper()}": str(value) for key, value in FAST_KAFKA.items()}
    return env | {
        "BALI_SERVICE_NAME": name,
        "BALI_PORT": str(free_port()),
        "BALI_DATA_DIR": str(directory),
        "BALI_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "BALI_KAFKA_TOPIC_PREFIX": prefix,
        "BALI_LOG_LEVEL": "WARNING",
    }


@pytest.fixture
def prefix() -> str:
    return f"f{uuid4().hex[:10]}."


@pytest.fixture
def reporting(kafka_bootstrap: str, tmp_path: Path, prefix: str) -> Iterator[ServiceProcess]:
    service = ServiceProcess(
        "reporting", service_env("reporting", kafka_bootstrap, tmp_path, prefix), tmp_path / "r.log"
    )
    yield service
    service.stop()


async def test_consumer_killed_between_db_commit_and_offset_commit_applies_each_event_once(
    kafka_bootstrap: str, reporting: ServiceProcess, prefix: str, tmp_path: Path
) -> None:
    settings = CommonSettings(kafka_bootstrap_servers=kafka_bootstrap, kafka_topic_prefix=prefix)
    await ensure_topics(settings)
    reporting.start(BALI_FAULT_CONSUMER_EXIT_AFTER_COMMIT_EVERY="7")
    template = json.loads(CONTRACT.read_text())
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for number in range(30):
            payload = ActivityCreated.model_validate(
                template | {"activity": template["activity"] | {"activity_id": f"a-{number}"}}
            )
            event = CloudEvent.of(payload, source="/test", subject=f"a-{number}")
            await producer.send_and_wait(
                STREAM_TOPICS[Stream.activities].qualified(prefix),
                event.kafka_value(),
                key=event.kafka_key(),
                headers=event.kafka_headers(),
            )
    finally:
        await producer.stop()
    assert await asyncio.to_thread(reporting.wait_for_exit) == 9, "the fault hook killed it"

    reporting.start()
    ops = issue_dev_token(
        CommonSettings(data_dir=tmp_path), subject="ops", member_id="RSO", roles=[Role.ops]
    )
    counts: dict[str, int] = {}
    skipped: list[str] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{reporting.port}") as client:
        # The killed life may have applied all 30 already (a fetch is one transaction, and the
        # fault hook fires after it): wait for the redelivery itself, not only for the counts.
        for _ in range(300):
            body = (
                await client.get(
                    "/v1/pipeline/event-counts", headers={"Authorization": f"Bearer {ops}"}
                )
            ).json()
            counts = {item["event_type"]: item["count"] for item in body["items"]}
            skipped = _duplicate_lines((await client.get("/metrics")).text)
            if counts.get("activity.created", 0) >= 30 and skipped:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)  # a late duplicate would show up now
        body = (
            await client.get(
                "/v1/pipeline/event-counts", headers={"Authorization": f"Bearer {ops}"}
            )
        ).json()
        skipped = _duplicate_lines((await client.get("/metrics")).text)
    counts = {item["event_type"]: item["count"] for item in body["items"]}
    assert counts == {"activity.created": 30}
    assert skipped, "the redelivered events were seen and skipped by the inbox"
    assert sum(float(line.rsplit(" ", 1)[1]) for line in skipped) >= 1


def _duplicate_lines(metrics: str) -> list[str]:
    return [
        line for line in metrics.splitlines() if line.startswith("bali_events_duplicate_total{")
    ]


async def test_relay_killed_between_publish_and_mark_sent_loses_nothing(
    kafka_bootstrap: str, prefix: str, tmp_path: Path
) -> None:
    env = service_env("activities", kafka_bootstrap, tmp_path, prefix)
    activities = ServiceProcess("activities", env, tmp_path / "a.log")
    settings = CommonSettings(
        data_dir=tmp_path, kafka_bootstrap_servers=kafka_bootstrap, kafka_topic_prefix=prefix
    )
    await ensure_topics(settings)
    # Every 10th published row kills the relay: the seeded member directory trips it at once.
    activities.start(wait_ready=False, BALI_FAULT_RELAY_EXIT_AFTER_PUBLISH_EVERY="10")
    try:
        assert await asyncio.to_thread(activities.wait_for_exit) == 9
        activities.start()
        members = await read_topic(settings, STREAM_TOPICS[Stream.members], expected=60)
    finally:
        activities.stop()
    distinct = {event.id for event in members}
    assert len(members) > len(distinct), "a row was published twice: the crash was exercised"
    assert {event.subject for event in members} >= {"AU", "ID", "IOM", "RSO"}
    assert len({event.subject for event in members}) == len(distinct), "each member once"
