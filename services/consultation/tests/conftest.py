"""Fixtures of the consultation tests: one running service per module (consumers cost seconds)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from consultation_testkit import Service, module_service


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def service(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Service]:
    """A module's service with the escalation loop off: tests fire timers by calling it."""
    async with module_service(
        kafka_bootstrap, tmp_path_factory, escalation_loop_enabled=False
    ) as running_service:
        yield running_service
