"""Each security test module attacks every service of `security_support.SERVICES` in turn."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from security_support import MAX_REQUEST_BYTES, SERVICES, Deployed, deployed


@pytest_asyncio.fixture(loop_scope="session", scope="module", params=sorted(SERVICES))
async def service(
    request: pytest.FixtureRequest, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Deployed]:
    directory = tmp_path_factory.mktemp(request.param)
    async with deployed(
        request.param, kafka_bootstrap, directory, max_request_bytes=MAX_REQUEST_BYTES
    ) as running_service:
        yield running_service
