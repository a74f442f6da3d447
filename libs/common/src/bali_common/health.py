"""Liveness and readiness: `/healthz` says the process runs, `/readyz` checks its dependencies.

Readiness fails (503) only on what stops the service from doing its job: its database.
A broker that is away degrades it (reported, 200): writes still commit with their events in
the outbox, which the relay publishes when the broker returns. Taking every replica out of
service while the broker is away would refuse exactly the writes the outbox exists to keep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter, Response
from pydantic import BaseModel

ReadinessCheck = Callable[[], Awaitable[None]]


class HealthStatus(BaseModel):
    status: str
    checks: dict[str, str] = {}


def health_router(
    required: Mapping[str, ReadinessCheck],
    *,
    degrading: Mapping[str, ReadinessCheck] | None = None,
    timeout: float = 2.0,
) -> APIRouter:
    """`required` checks failing make the service unready; `degrading` ones are reported."""
    router = APIRouter(tags=["health"])
    optional = dict(degrading or {})

    @router.get("/healthz", response_model=HealthStatus)
    async def healthz() -> HealthStatus:
        return HealthStatus(status="ok")

    @router.get(
        "/readyz",
        response_model=HealthStatus,
        responses={503: {"model": HealthStatus, "description": "A dependency is unavailable"}},
    )
    async def readyz(response: Response) -> HealthStatus:
        results = {
            name: await _outcome(check, timeout) for name, check in {**required, **optional}.items()
        }
        if any(results[name] != "ok" for name in required):
            response.status_code = 503
            return HealthStatus(status="unavailable", checks=results)
        degraded = any(results[name] != "ok" for name in optional)
        return HealthStatus(status="degraded" if degraded else "ok", checks=results)

    return router


async def _outcome(check: ReadinessCheck, timeout: float) -> str:
    try:
        await asyncio.wait_for(check(), timeout)
    except Exception as error:
        return f"unavailable: {type(error).__name__}"
    return "ok"
