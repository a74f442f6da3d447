"""Fixtures of the reporting tests: a running service on its own database and topics."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from bali_devkit.testing.plugin import SettingsFactory, settings_factory_for
from bali_reporting.settings import ReportingSettings
from dashboard_support import year_of_events
from reporting_testkit import Reporting, publish, started


@pytest_asyncio.fixture
async def reporting(make_settings: SettingsFactory) -> AsyncIterator[Reporting]:
    """A service of its own for one test."""
    settings = await make_settings(ReportingSettings)
    async with started(settings) as service:
        yield service


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def service(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Reporting]:
    """One service for a whole test module, on its own database and topics."""
    directory = tmp_path_factory.mktemp("reporting")
    async with settings_factory_for(kafka_bootstrap, directory) as settings_for:
        settings = await settings_for(ReportingSettings)
        async with started(settings) as running:
            yield running


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def year_loaded(service: Reporting) -> Reporting:
    """The module's service with `dashboard_support.year_of_events` applied."""
    events = year_of_events()
    await publish(service.settings, events)
    await service.caught_up(len(events))
    return service
