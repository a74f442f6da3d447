"""Fixtures of the activities tests: one running service per test module."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from activities_testkit import Service, started
from bali_activities.settings import ActivitiesSettings
from bali_devkit.testing.plugin import settings_factory_for


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def service(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Service]:
    """One service for a whole test module, on its own database and topics."""
    directory = tmp_path_factory.mktemp("activities")
    async with settings_factory_for(kafka_bootstrap, directory) as settings_for:
        settings = await settings_for(ActivitiesSettings)
        async with started(settings) as running:
            yield running
