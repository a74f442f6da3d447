"""The platform a dashboard test opens in Chromium: activities, consultation and reporting
served on real sockets over the embedded broker, filled with `bali demo`'s year, and the
system's Chromium driven by Playwright (`bali_devkit.testing.browser`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from bali_activities.app import create_app as create_activities
from bali_activities.settings import ActivitiesSettings
from bali_common.auth import Role
from bali_consultation.app import create_app as create_consultation
from bali_consultation.settings import ConsultationSettings
from bali_devkit.broker import free_port
from bali_devkit.demo import DemoSummary, load_demo
from bali_devkit.testing.plugin import SettingsFactory, TokenBook, running, serving
from bali_reporting.app import create_app as create_reporting
from bali_reporting.settings import ReportingSettings
from fastapi import FastAPI


@dataclass
class DemoPlatform:
    urls: dict[str, str]
    tokens: TokenBook
    demo: DemoSummary
    logs: list[str] = field(default_factory=list)

    @property
    def dashboard(self) -> str:
        return self.urls["reporting"]

    async def board(self, headers: dict[str, str] | None = None) -> dict[str, Any]:
        """The alert board as the API shows it to `headers`' caller (default: an admin)."""
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.get(
                f"{self.dashboard}/v1/reports/alerts",
                params={"page_size": 100},
                headers=headers or self.tokens.admin(),
            )
        response.raise_for_status()
        return dict(response.json())

    async def raise_alert(self, title: str, *, member: str = "TH") -> str:
        body = {
            "situation_type": "maritime_distress",
            "title": title,
            "description": "Raised while the dashboard is open.",
            "severity": "Extreme",
            "urgency": "Immediate",
            "certainty": "Observed",
            "affected_members": ["ID"],
            "location": {"place_names": ["Timor Sea"]},
            "sensitivity": "public",
            "dedup_key": "dashboard-" + "-".join(title.lower().split()),
        }
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(
                f"{self.urls['consultation']}/v1/alerts",
                json=body,
                headers=self.tokens(member, (Role.member,)),
            )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


@contextlib.asynccontextmanager
async def _served(app: FastAPI) -> AsyncIterator[str]:
    port = free_port()
    async with running(app), serving(app, port):
        yield f"http://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def demo_platform(
    settings_for: SettingsFactory, *, activities: int = 60
) -> AsyncIterator[DemoPlatform]:
    reporting_settings = await settings_for(ReportingSettings)
    async with (
        _served(create_activities(await settings_for(ActivitiesSettings))) as activities_url,
        _served(create_consultation(await settings_for(ConsultationSettings))) as consultation,
        _served(create_reporting(reporting_settings)) as reporting,
    ):
        urls = {"activities": activities_url, "consultation": consultation, "reporting": reporting}
        logs: list[str] = []
        summary = await load_demo(
            reporting_settings,
            urls,
            lambda who, what: logs.append(f"{who}: {what}"),
            activities=activities,
        )
        assert not summary.failures, summary.failures
        yield DemoPlatform(urls, TokenBook(reporting_settings), summary, logs)
