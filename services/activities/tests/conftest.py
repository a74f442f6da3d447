"""Fixtures of the activities tests: one running service per test module."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from activities_testkit import Service, module_service
from bali_common.testing.plugin import DatabaseFactory


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def service(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Service]:
    async with module_service(kafka_bootstrap, tmp_path_factory.mktemp("activities")) as running:
        yield running


@pytest.fixture(autouse=True)
def _runs_in_the_database_pass(databases: DatabaseFactory) -> DatabaseFactory:
    """CI's PostgreSQL pass selects the tests that use `databases`: every test here uses one."""
    return databases
