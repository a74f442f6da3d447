"""Dependency aliases of the reporting service: who may read what, parts, settings and the clock."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from bali_common.auth import (
    AuthorizationError,
    CurrentPrincipal,
    Principal,
    Role,
    admits_roles,
    require_roles,
)
from bali_common.deps import RuntimeDep, SessionDep
from bali_common.visibility import AlertViewer, alert_viewer, is_acting_co_chair
from fastapi import Depends

from bali_reporting.parts import ReportingParts
from bali_reporting.projections.members import co_chair_members
from bali_reporting.settings import ReportingSettings

__all__ = ["Admin", "Now", "Operator", "PartsDep", "Reader", "SessionDep", "SettingsDep", "Viewer"]


async def reporting_parts(runtime: RuntimeDep) -> ReportingParts:
    return runtime.parts_as(ReportingParts)


async def reporting_settings(runtime: RuntimeDep) -> ReportingSettings:
    if not isinstance(runtime.settings, ReportingSettings):
        raise TypeError("the reporting app was built without ReportingSettings")
    return runtime.settings


PartsDep = Annotated[ReportingParts, Depends(reporting_parts)]
SettingsDep = Annotated[ReportingSettings, Depends(reporting_settings)]


async def current_time(parts: PartsDep) -> datetime:
    return parts.clock()


Now = Annotated[datetime, Depends(current_time)]

#: Coverage, trends, indicators and the alert board: every member agency and up.
Reader = Annotated[Principal, Depends(require_roles(Role.member, Role.co_chair, Role.ops))]
Admin = Annotated[Principal, Depends(require_roles(Role.admin))]


@admits_roles(Role.ops, Role.co_chair)
async def operator(principal: CurrentPrincipal, session: SessionDep) -> Principal:
    """Operations reports: ops, admins, and co-chairs acting for a co-chair member."""
    if principal.allows(Role.ops):
        return principal
    if is_acting_co_chair(principal, await co_chair_members(session)):
        return principal
    raise AuthorizationError("Requires the ops or admin role, or a co-chair of a co-chair member")


Operator = Annotated[Principal, Depends(operator)]


async def viewer_of(principal: CurrentPrincipal, session: SessionDep) -> AlertViewer:
    """The caller as the alert visibility rule sees them."""
    return alert_viewer(principal, co_chair_members=await co_chair_members(session))


Viewer = Annotated[AlertViewer, Depends(viewer_of)]
