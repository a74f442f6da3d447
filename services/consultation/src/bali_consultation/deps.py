"""FastAPI dependency aliases of the consultation service (clock, settings, principals)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from bali_common.auth import (
    CurrentPrincipal,
    OptionalPrincipal,
    Principal,
    Role,
    public_route,
    require_roles,
)
from bali_common.deps import RuntimeDep, SessionDep
from bali_common.visibility import AlertViewer
from fastapi import Depends, Request

from bali_consultation.alerts import access
from bali_consultation.metrics import ResponseMetrics
from bali_consultation.parts import ConsultationParts
from bali_consultation.settings import ConsultationSettings

__all__ = [
    "ClientSource",
    "CoChair",
    "CurrentPrincipal",
    "MetricsDep",
    "Now",
    "OptionalPrincipal",
    "OptionalViewer",
    "Raiser",
    "RuntimeDep",
    "SessionDep",
    "SettingsDep",
    "Viewer",
]


async def get_parts(runtime: RuntimeDep) -> ConsultationParts:
    return runtime.parts_as(ConsultationParts)


PartsDep = Annotated[ConsultationParts, Depends(get_parts)]
#: Every platform role; what each may see or do of an alert is the visibility rule's and the
#: lifecycle step's to decide (a hidden alert answers 404 like a missing one).
PlatformCaller = Annotated[Principal, Depends(require_roles(Role.member, Role.co_chair, Role.ops))]


async def current_time(parts: PartsDep) -> datetime:
    """Now, by the service's clock."""
    return parts.now()


async def get_settings(parts: PartsDep) -> ConsultationSettings:
    return parts.settings


async def get_response_metrics(parts: PartsDep) -> ResponseMetrics:
    return parts.metrics


async def current_viewer(
    principal: PlatformCaller, session: SessionDep, parts: PartsDep
) -> AlertViewer:
    """The caller as the visibility rule sees them."""
    return await access.viewer_of(session=session, principal=principal, settings=parts.settings)


async def optional_viewer(
    principal: OptionalPrincipal, session: SessionDep, parts: PartsDep
) -> AlertViewer | None:
    """As `current_viewer`, or None without a token (documents public alerts publish)."""
    if principal is None:
        return None
    return await access.viewer_of(session=session, principal=principal, settings=parts.settings)


async def client_source(request: Request) -> str | None:
    return request.client.host if request.client else None


Now = Annotated[datetime, Depends(current_time)]
SettingsDep = Annotated[ConsultationSettings, Depends(get_settings)]
MetricsDep = Annotated[ResponseMetrics, Depends(get_response_metrics)]
ClientSource = Annotated[str | None, Depends(client_source)]
#: Any member may raise; co-chairs are members too.
Raiser = Annotated[Principal, Depends(require_roles(Role.member, Role.co_chair))]
CoChair = Annotated[Principal, Depends(require_roles(Role.co_chair))]
#: Routes answering without a bearer token, and what authorises them instead.
PUBLIC_FEED = Depends(public_route("public alerts only"))
PUBLIC_OR_VISIBLE = Depends(
    public_route("public alerts for anyone; a restricted alert needs a token that may see it")
)
SIGNED_LINK = Depends(public_route("the signed acknowledge link token"))
SIGNED_LINK_OR_CO_CHAIR = Depends(
    public_route("the signed acknowledge link token, or a co-chair's bearer token")
)
Viewer = Annotated[AlertViewer, Depends(current_viewer)]
OptionalViewer = Annotated[AlertViewer | None, Depends(optional_viewer)]
