"""`bali demo` fills every report through the APIs; `bali reporting rebuild` and
`python -m bali_reporting rebuild` rebuild a running reporting service."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from bali_activities.app import create_app as create_activities
from bali_activities.settings import ActivitiesSettings
from bali_common.auth import Role, issue_dev_token
from bali_consultation.app import create_app as create_consultation
from bali_consultation.settings import ConsultationSettings
from bali_devkit.broker import free_port
from bali_devkit.testing.plugin import SettingsFactory, running, serving
from bali_reporting.app import create_app as create_reporting
from bali_reporting.settings import ReportingSettings
from fastapi import FastAPI

BALI = str(Path(sys.executable).parent / "bali")


@contextlib.asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    port = free_port()
    async with running(app), serving(app, port):
        yield f"http://127.0.0.1:{port}"


async def command(*args: str, data_dir: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *args,
        env={**os.environ, "BALI_DATA_DIR": str(data_dir)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 240)
    return process.returncode or 0, output.decode()


async def test_the_demo_year_fills_every_report_and_survives_a_rebuild(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    reporting_settings = await make_settings(ReportingSettings)
    admin = issue_dev_token(reporting_settings, subject="admin", member_id=None, roles=[Role.admin])
    headers = {"Authorization": f"Bearer {admin}"}
    async with (
        served(create_activities(await make_settings(ActivitiesSettings))) as activities,
        served(create_consultation(await make_settings(ConsultationSettings))) as consultation,
        served(create_reporting(reporting_settings)) as reporting,
        httpx.AsyncClient(base_url=reporting, headers=headers, timeout=30) as client,
    ):
        code, output = await command(
            BALI,
            "demo",
            "--activities-url",
            activities,
            "--consultation-url",
            consultation,
            "--reporting-url",
            reporting,
            "--activities",
            "60",
            data_dir=tmp_path,
        )
        assert code == 0, output
        assert "reporting is up to date" in output

        async def report(name: str, **params: Any) -> dict[str, Any]:
            response = await client.get(f"/v1/reports/{name}", params=params)
            assert response.status_code == 200, response.text
            return dict(response.json())

        board = await report("alerts", page_size=50)
        assert set(board["by_status"]) == {
            "raised",
            "acknowledged",
            "escalated",
            "consultation_convened",
            "outreach_under_way",
            "resolved",
            "withdrawn",
        }
        assert [a["sensitivity"] for a in board["items"]].count("restricted") == 1
        coverage = await report("coverage")
        assert coverage["uncovered_items"] == [19, 23]
        indicators = (await report("indicators", page_size=200))["items"]
        assert any(row["by_sex"]["outputs_with_sex"] and row["by_age"] for row in indicators)
        follow_up = (await report("follow-up"))["items"]
        assert follow_up
        assert all(row["alert"] is not None for row in follow_up)

        code, output = await command(
            BALI, "reporting", "rebuild", "--url", reporting, data_dir=tmp_path
        )
        assert code == 0, output
        assert "rebuilt from" in output
        code, output = await command(
            sys.executable,
            "-m",
            "bali_reporting",
            "rebuild",
            "--url",
            reporting,
            "--token",
            admin,
            data_dir=tmp_path,
        )
        assert code == 0, output
        assert "done:" in output
        assert (await report("alerts", page_size=50))["by_status"] == board["by_status"]
        assert (await report("coverage")) == coverage
