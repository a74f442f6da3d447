"""`bali up` as a newcomer runs it: broker and four services as processes, then a clean stop."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from bali_common.auth import Role, issue_dev_token
from bali_common.settings import CommonSettings
from bali_devkit.broker import free_port
from bali_devkit.demo import request_example

pytestmark = pytest.mark.slow

SERVICES = ("activities", "consultation", "notifications", "reporting")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    data_dir = tmp_path_factory.mktemp("bali-up")
    ports = {name: free_port() for name in (*SERVICES, "broker", "smtp")}
    command = [
        str(Path(sys.executable).parent / "bali"),
        "up",
        "--data-dir",
        str(data_dir),
        *[arg for name in SERVICES for arg in (f"--{name}-port", str(ports[name]))],
        "--broker-port",
        str(ports["broker"]),
        "--smtp-port",
        str(ports["smtp"]),
    ]
    log_path = data_dir / "up.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "BALI_LOG_LEVEL": "INFO"},
        )
        try:
            _wait_for_welcome(log_path, process)
            yield {"process": process, "ports": ports, "data_dir": data_dir, "log": log_path}
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()


def _wait_for_welcome(log_path: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if "Press Ctrl-C to stop." in log_path.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise AssertionError(f"bali up exited early:\n{log_path.read_text()}")
        time.sleep(0.2)
    raise AssertionError(f"bali up did not come up:\n{log_path.read_text()}")


def test_every_service_is_ready_and_the_welcome_prints_urls_and_a_token(
    platform: dict[str, object],
) -> None:
    ports = platform["ports"]
    assert isinstance(ports, dict)
    for name in SERVICES:
        response = httpx.get(f"http://127.0.0.1:{ports[name]}/readyz", timeout=5)
        assert response.status_code == 200, (name, response.text)
        assert response.json()["checks"] == {"database": "ok", "broker": "ok"}
    log = Path(str(platform["log"])).read_text()
    for name in SERVICES:
        assert f"http://127.0.0.1:{ports[name]}/docs" in log
    assert "Admin dev token" in log
    assert f"dashboard      http://127.0.0.1:{ports['reporting']}/ (sign in with a token)" in log


def test_the_reporting_process_serves_the_dashboard(platform: dict[str, object]) -> None:
    """Templates and static files ship with the package the process runs."""
    ports = platform["ports"]
    assert isinstance(ports, dict)
    base = f"http://127.0.0.1:{ports['reporting']}"
    settings = CommonSettings(data_dir=Path(str(platform["data_dir"])))
    token = issue_dev_token(settings, subject="ops", member_id="RSO", roles=[Role.ops])
    assert httpx.get(f"{base}/sign-in", timeout=10).status_code == 200
    page = httpx.get(f"{base}/", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert page.status_code == 200
    assert "Alert board" in page.text
    script = re.search(r'src="(/static/dashboard\.js\?v=[0-9a-f]+)"', page.text)
    assert script is not None
    assert httpx.get(f"{base}{script[1]}", timeout=10).status_code == 200


def test_pipeline_carries_events_across_processes(platform: dict[str, object]) -> None:
    """Reporting (a separate process) sees what the other services publish."""
    ports = platform["ports"]
    assert isinstance(ports, dict)
    settings = CommonSettings(data_dir=Path(str(platform["data_dir"])))
    token = issue_dev_token(settings, subject="ops-1", member_id="RSO", roles=[Role.ops])
    headers = {"Authorization": f"Bearer {token}"}

    async def member_events_counted() -> int:
        async with httpx.AsyncClient(timeout=5) as client:
            for _ in range(300):
                response = await client.get(
                    f"http://127.0.0.1:{ports['reporting']}/v1/pipeline/event-counts",
                    headers=headers,
                )
                counts = {i["event_type"]: i["count"] for i in response.json()["items"]}
                if counts.get("member.registered", 0) > 0:
                    return counts["member.registered"]
                await asyncio.sleep(0.2)
        return 0

    assert asyncio.run(member_events_counted()) > 0


def test_alert_reaches_co_chairs_by_email_and_their_link_acknowledges_it(
    platform: dict[str, object],
) -> None:
    """The platform's purpose, across four processes: raise, notify, one-click acknowledge."""
    ports = platform["ports"]
    assert isinstance(ports, dict)
    data_dir = Path(str(platform["data_dir"]))
    settings = CommonSettings(data_dir=data_dir)
    raiser = issue_dev_token(settings, subject="duty-th", member_id="TH", roles=[Role.member])
    consultation = f"http://127.0.0.1:{ports['consultation']}"
    openapi = httpx.get(f"{consultation}/openapi.json", timeout=10).json()
    documented = request_example(openapi, "/v1/alerts", "post")
    raised = httpx.post(
        f"{consultation}/v1/alerts",
        json=documented | {"dedup_key": "e2e-rote"},
        headers={"Authorization": f"Bearer {raiser}"},
        timeout=10,
    )
    assert raised.status_code == 201, raised.text
    alert_id = raised.json()["id"]

    emails = _wait_for_emails(data_dir / "mail", alert_id, expected=2)
    assert {str(m["to"]) for m in emails} == {"focal.point@id.example", "focal.point@au.example"}
    assert all(str(m["subject"]).startswith("[EXTREME]") for m in emails)
    body = emails[0].get_body(preferencelist=("plain",))
    assert body is not None
    link = re.search(r"(http://\S+/acknowledge\?token=\S+)", body.get_content())
    assert link is not None

    page = httpx.get(link.group(1), timeout=10)
    assert page.status_code == 200
    assert (
        httpx.get(f"{consultation}/v1/alerts/{alert_id}", headers=_bearer(raiser)).json()["status"]
        == "raised"
    ), "opening the link must not acknowledge"
    token = link.group(1).split("token=", 1)[1]
    confirmed = httpx.post(
        f"{consultation}/v1/alerts/{alert_id}/acknowledge", data={"token": token}, timeout=10
    )
    assert confirmed.status_code == 200
    alert = httpx.get(f"{consultation}/v1/alerts/{alert_id}", headers=_bearer(raiser)).json()
    assert alert["status"] == "acknowledged"
    reused = httpx.post(
        f"{consultation}/v1/alerts/{alert_id}/acknowledge", data={"token": token}, timeout=10
    )
    assert reused.status_code == 409


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _wait_for_emails(directory: Path, alert_id: str, *, expected: int) -> list[EmailMessage]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = []
        for path in sorted(directory.glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if message["X-Bali-Alert-Id"] == alert_id:
                assert isinstance(message, EmailMessage)
                found.append(message)
        if len(found) >= expected:
            return found
        time.sleep(0.2)
    raise AssertionError(f"expected {expected} emails about {alert_id}")


def test_sigterm_stops_everything_cleanly(platform: dict[str, object]) -> None:
    process = platform["process"]
    assert isinstance(process, subprocess.Popen)
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0
    log = Path(str(platform["log"])).read_text()
    assert log.rstrip().endswith("stopped")
    ports = platform["ports"]
    assert isinstance(ports, dict)
    for name in SERVICES:
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{ports[name]}/healthz", timeout=2)
