"""Throttling on the real services: a burst of refused tokens, or of unauthenticated link
requests, from one address gets 429 with Retry-After; probes and scrapes still answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import uuid4

import httpx
import pytest
import pytest_asyncio
from security_support import SERVICES, Deployed, deployed, routes

FAILED_AUTH_BUDGET = 5
ANONYMOUS_BUDGET = 4


@pytest_asyncio.fixture(loop_scope="session", scope="module", params=sorted(SERVICES))
async def throttled(
    request: pytest.FixtureRequest, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Deployed]:
    async with deployed(
        request.param,
        kafka_bootstrap,
        tmp_path_factory.mktemp(f"throttled-{request.param}"),
        rate_limit_enabled=True,
        rate_limit_failed_auth_per_address=f"{FAILED_AUTH_BUDGET}/minute",
        rate_limit_anonymous_per_address=f"{ANONYMOUS_BUDGET}/minute",
    ) as service:
        yield service


async def test_a_burst_of_bad_tokens_is_throttled(throttled: Deployed) -> None:
    bad = {"Authorization": f"Bearer {uuid4().hex}.{uuid4().hex}.{uuid4().hex}"}
    target = next(r for r in routes(throttled.app) if r.method == "get" and not r.path_params)
    statuses = [
        (await throttled.client.get(target.path, headers=bad)).status_code
        for _ in range(FAILED_AUTH_BUDGET + 3)
    ]
    assert statuses[:FAILED_AUTH_BUDGET] == [401] * FAILED_AUTH_BUDGET
    assert statuses[FAILED_AUTH_BUDGET:] == [429] * 3
    refused = await throttled.client.get(target.path, headers=throttled.tokens.admin())
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    for probe in ("/healthz", "/readyz", "/metrics"):
        assert (await throttled.client.get(probe)).status_code == 200, probe


async def test_unauthenticated_link_requests_are_throttled(throttled: Deployed) -> None:
    link_routes = [r for r in routes(throttled.app) if r.query("token") and r.method == "get"]
    if not link_routes:
        pytest.skip(f"{throttled.name} has no signed-link routes")
    page = link_routes[0].path.replace("{alert_id}", str(uuid4()))
    # Another address than the bad-token burst's: its lockout must not decide this test.
    transport = httpx.ASGITransport(app=throttled.app, client=("192.0.2.44", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        statuses = [
            (await client.get(page, params={"token": "x.y"})).status_code
            for _ in range(ANONYMOUS_BUDGET + 2)
        ]
    assert 429 in statuses
    assert statuses.index(429) <= ANONYMOUS_BUDGET
    assert all(status in (403, 429) for status in statuses), statuses
