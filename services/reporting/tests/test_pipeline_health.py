"""Pipeline health reads every service's /metrics on demand; a silent service is unreachable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest_asyncio
from bali_activities.app import create_app as create_activities
from bali_activities.settings import ActivitiesSettings
from bali_devkit.broker import free_port
from bali_devkit.testing.plugin import SettingsFactory, eventually, running, serving
from bali_reporting.settings import ReportingSettings
from reporting_testkit import activity, activity_event, publish, started


@pytest_asyncio.fixture
async def silent_port() -> AsyncIterator[int]:
    """A port that accepts connections and never answers: a hung service."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def test_services_are_read_on_demand_and_a_silent_one_is_unreachable(
    make_settings: SettingsFactory, silent_port: int
) -> None:
    activities_settings = await make_settings(ActivitiesSettings)
    port = free_port()
    activities = create_activities(activities_settings)
    async with running(activities), serving(activities, port):
        settings = await make_settings(
            ReportingSettings,
            activities_url=f"http://127.0.0.1:{port}",
            consultation_url=f"http://127.0.0.1:{free_port()}",
            notifications_url=f"http://127.0.0.1:{silent_port}",
            scrape_timeout_s=0.5,
        )
        async with started(settings) as reporting:
            event = activity_event(activity("a-1"))
            await publish(settings, [event])

            async def counted() -> bool:
                counts = (await reporting.get("/v1/pipeline/event-counts")).json()["items"]
                return "activity.created" in {c["event_type"] for c in counts}

            await eventually(counted)
            response = await reporting.get("/v1/reports/pipeline")
    assert response.status_code == 200, response.text
    report = response.json()
    services = {s["service"]: s for s in report["services"]}
    assert set(services) == {"activities", "consultation", "notifications", "reporting"}
    assert services["activities"]["reachable"] is True
    assert services["activities"]["outbox_backlog"] is not None
    assert services["consultation"]["reachable"] is False
    assert "ConnectError" in services["consultation"]["error"]
    assert services["notifications"]["reachable"] is False
    assert "Timeout" in services["notifications"]["error"]
    groups = {g["group"]: g for g in services["reporting"]["consumer_groups"]}
    assert groups["reporting.projections"]["applied"] >= 1
    assert groups["reporting.projections"]["dead_lettered"] == 0
    received = {t["event_type"]: t["count"] for t in report["events_received"]}
    assert received["activity.created"] == 1
    assert report["events_received_total"] >= 1
