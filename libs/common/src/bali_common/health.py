"""Liveness and readiness: `/healthz` says the process runs, `/readyz` checks its dependencies."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from fastapi import APIRouter, Response
from pydantic import BaseModel

ReadinessCheck = Callable[[], Awaitable[None]]


class HealthStatus(BaseModel):
    status: str
    checks: dict[str, str] = {}


def health_router(checks: Mapping[str, ReadinessCheck], *, timeout: float = 2.0) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", response_model=HealthStatus)
    async def healthz() -> HealthStatus:
        return HealthStatus(status="ok")

    @router.get(
        "/readyz",
        response_model=HealthStatus,
        responses={503: {"model": HealthStatus, "description": "A dependency is unavailable"}},
    )
    async def readyz(response: Response) -> HealthStatus:
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check(), timeout)
                results[name] = "ok"
            except Exception as error:
                results[name] = f"unavailable: {type(error).__name__}"
        ready = all(result == "ok" for result in results.values())
        if not ready:
            response.status_code = 503
        return HealthStatus(status="ok" if ready else "unavailable", checks=results)

    return router
