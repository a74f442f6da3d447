"""Fixtures of the reporting tests: a running service on its own database and topics."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from bali_devkit.testing.plugin import SettingsFactory
from bali_reporting.settings import ReportingSettings
from reporting_testkit import Reporting, started


@pytest_asyncio.fixture
async def reporting(make_settings: SettingsFactory) -> AsyncIterator[Reporting]:
    settings = await make_settings(ReportingSettings)
    async with started(settings) as service:
        yield service
