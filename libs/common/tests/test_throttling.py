"""Rate limits: 429 with Retry-After per address, per member, after refused credentials and
without credentials; probes and scrapes exempt; counters shared through Redis by replicas."""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import httpx
import pytest
from bali_common.auth import CurrentPrincipal
from bali_common.runtime import ServiceDefinition, build_app
from bali_common.settings import CommonSettings
from bali_devkit.testing.plugin import SettingsFactory, bearer, running
from fastapi import APIRouter, FastAPI

REDIS = ("127.0.0.1", 6379)
GENEROUS = "1000/minute"


def create_app(settings: CommonSettings) -> FastAPI:
    router = APIRouter(prefix="/v1/things")

    @router.get("")
    async def things(principal: CurrentPrincipal) -> dict[str, str | None]:
        return {"member": principal.member_id}

    @router.get("/public")
    async def public() -> dict[str, str]:
        return {"hello": "world"}

    return build_app(
        ServiceDefinition(
            name="things", title="Things", description="Throttle probe", models=[], routers=[router]
        ),
        settings,
    )


async def throttled_settings(make_settings: SettingsFactory, **limits: Any) -> CommonSettings:
    values = {
        "rate_limit_per_address": GENEROUS,
        "rate_limit_per_member": GENEROUS,
        "rate_limit_failed_auth_per_address": GENEROUS,
        "rate_limit_anonymous_per_address": GENEROUS,
        **limits,
    }
    # A service name of its own: counters in a shared Redis never meet another test's.
    values.setdefault("service_name", f"things-{uuid4().hex[:8]}")
    return await make_settings(CommonSettings, rate_limit_enabled=True, **values)


@contextlib.asynccontextmanager
async def from_address(app: FastAPI, address: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def assert_throttled(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["type"].endswith("/rate-limited")


async def test_refused_credentials_lock_the_address_out_but_not_the_probes(
    make_settings: SettingsFactory,
) -> None:
    settings = await throttled_settings(
        make_settings, rate_limit_failed_auth_per_address="3/minute"
    )
    app = create_app(settings)
    good = bearer(settings, member="AU")
    bad = {"Authorization": "Bearer not-a-token"}
    async with running(app) as client, from_address(app, "192.0.2.10") as attacker:
        statuses = [(await attacker.get("/v1/things", headers=bad)).status_code for _ in range(5)]
        assert statuses == [401, 401, 401, 429, 429]
        assert_throttled(await attacker.get("/v1/things", headers=good))
        for probe in ("/healthz", "/readyz", "/metrics"):
            assert (await attacker.get(probe)).status_code == 200, probe
        # Another address is not locked out, and the refusals are counted.
        assert (await client.get("/v1/things", headers=good)).status_code == 200
        scrape = (await client.get("/metrics")).text
        assert 'bali_http_throttled_total{rule="per_address_after_refused_credentials"} 3.0' in (
            scrape
        )


async def test_a_member_has_a_budget_of_its_own(make_settings: SettingsFactory) -> None:
    settings = await throttled_settings(make_settings, rate_limit_per_member="2/minute")
    app = create_app(settings)
    au = bearer(settings, member="AU", subject="one-user")
    au_colleague = bearer(settings, member="AU", subject="another-user")
    nz = bearer(settings, member="NZ")
    async with running(app) as client, from_address(app, "192.0.2.11") as elsewhere:
        assert (await client.get("/v1/things", headers=au)).status_code == 200
        assert (await elsewhere.get("/v1/things", headers=au_colleague)).status_code == 200
        assert_throttled(await client.get("/v1/things", headers=au))
        assert (await client.get("/v1/things", headers=nz)).status_code == 200


async def test_requests_without_credentials_and_per_address_have_their_limits(
    make_settings: SettingsFactory,
) -> None:
    settings = await throttled_settings(
        make_settings,
        rate_limit_anonymous_per_address="2/minute",
        rate_limit_per_address="4/minute",
    )
    app = create_app(settings)
    token = bearer(settings, member="AU")
    async with running(app) as client:
        assert [(await client.get("/v1/things/public")).status_code for _ in range(3)] == [
            200,
            200,
            429,
        ]
        # Three requests counted against the address so far; the fourth passes, the fifth not.
        assert (await client.get("/v1/things", headers=token)).status_code == 200
        assert_throttled(await client.get("/v1/things", headers=token))


def redis_reachable() -> bool:
    with contextlib.suppress(OSError), socket.create_connection(REDIS, timeout=0.5):
        return True
    return False


async def test_replicas_sharing_redis_share_the_budget(make_settings: SettingsFactory) -> None:
    if not redis_reachable():
        pytest.skip("Redis is not reachable on 127.0.0.1:6379 (CI runs it)")
    shared = {
        "service_name": f"things-{uuid4().hex[:8]}",
        "rate_limit_per_member": "4/minute",
        "rate_limit_storage_url": f"async+redis://{REDIS[0]}:{REDIS[1]}/0",
    }
    # Two replicas: one service, two databases, one Redis.
    one = await throttled_settings(make_settings, **shared)
    two = await throttled_settings(make_settings, **shared)
    first, second = create_app(one), create_app(two)
    token = bearer(one, member="AU")
    async with running(first) as to_first, running(second) as to_second:
        ready = (await to_first.get("/readyz")).json()
        assert ready["checks"]["rate_limits"] == "ok"
        answers = [
            (await replica.get("/v1/things", headers=token)).status_code
            for replica in (to_first, to_second, to_first, to_second, to_first, to_second)
        ]
    assert answers == [200, 200, 200, 200, 429, 429]


async def test_unreachable_counters_admit_requests_and_degrade_readiness(
    make_settings: SettingsFactory,
) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    settings = await throttled_settings(
        make_settings,
        rate_limit_per_member="1/minute",
        rate_limit_storage_url=f"async+redis://127.0.0.1:{port}/0",
    )
    app = create_app(settings)
    token = bearer(settings, member="AU")
    async with running(app) as client:
        for _ in range(3):
            assert (await client.get("/v1/things", headers=token)).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded"
        assert ready.json()["checks"]["rate_limits"].startswith("unavailable")
        scrape = (await client.get("/metrics")).text
        errors = re.search(r"^bali_rate_limit_storage_errors_total (\S+)$", scrape, re.M)
        # Each request: the address's refused credentials, the address and the member.
        assert errors is not None
        assert float(errors.group(1)) >= 9
