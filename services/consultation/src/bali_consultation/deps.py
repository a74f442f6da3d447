"""FastAPI dependency aliases of the consultation service (clock, settings, principals)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from bali_common.auth import (
    CurrentPrincipal,
    OptionalPrincipal,
    Principal,
    Role,
    require_roles,
)
from bali_common.deps import RuntimeDep, SessionDep
from fastapi import Depends, Request

from bali_consultation.metrics import ResponseMetrics
from bali_consultation.settings import ConsultationSettings

Clock = Callable[[], datetime]

__all__ = [
    "ClientSource",
    "CoChair",
    "CurrentPrincipal",
    "MetricsDep",
    "Now",
    "OptionalPrincipal",
    "Raiser",
    "RuntimeDep",
    "SessionDep",
    "SettingsDep",
]


def get_clock(request: Request) -> Clock:
    clock = request.app.state.clock
    assert callable(clock)
    return clock  # type: ignore[no-any-return]


def current_time(clock: Annotated[Clock, Depends(get_clock)]) -> datetime:
    """The service's clock (injected, so tests drive time instead of sleeping), in UTC."""
    return clock().astimezone(UTC)


def get_settings(runtime: RuntimeDep) -> ConsultationSettings:
    settings = runtime.settings
    assert isinstance(settings, ConsultationSettings)
    return settings


def get_response_metrics(request: Request) -> ResponseMetrics:
    metrics = request.app.state.response_metrics
    assert isinstance(metrics, ResponseMetrics)
    return metrics


def client_source(request: Request) -> str | None:
    return request.client.host if request.client else None


Now = Annotated[datetime, Depends(current_time)]
SettingsDep = Annotated[ConsultationSettings, Depends(get_settings)]
MetricsDep = Annotated[ResponseMetrics, Depends(get_response_metrics)]
ClientSource = Annotated[str | None, Depends(client_source)]
#: Any member may raise; co-chairs are members too.
Raiser = Annotated[Principal, Depends(require_roles(Role.member, Role.co_chair))]
CoChair = Annotated[Principal, Depends(require_roles(Role.co_chair))]
