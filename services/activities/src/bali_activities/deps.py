"""Dependency aliases of the activities service: who may call what, and where a call came from."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from bali_common.auth import AuthorizationError, CurrentPrincipal, Principal, Role, require_roles
from bali_common.db import transaction
from bali_common.deps import RuntimeDep, SessionDep
from bali_common.http.audit import record_audit
from fastapi import Depends, Request

from bali_activities.settings import ActivitiesSettings

__all__ = ["Admin", "Reader", "RuntimeDep", "SessionDep", "SettingsDep", "SourceDep", "Writer"]


async def activities_settings(runtime: RuntimeDep) -> ActivitiesSettings:
    settings = runtime.settings
    if not isinstance(settings, ActivitiesSettings):
        raise TypeError("the activities app was built without ActivitiesSettings")
    return settings


SettingsDep = Annotated[ActivitiesSettings, Depends(activities_settings)]


async def client_source(request: Request) -> str | None:
    """The client address, recorded in the audit trail as the request's source."""
    return request.client.host if request.client else None


SourceDep = Annotated[str | None, Depends(client_source)]


def _audited_roles(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """Like `require_roles`, but a refusal of a mutating call is written to the audit trail.

    The audit row needs its own transaction: the request's own work never starts.
    """
    names = ", ".join(sorted(role.value for role in roles))

    async def dependency(
        principal: CurrentPrincipal, runtime: RuntimeDep, request: Request
    ) -> Principal:
        if principal.allows(*roles):
            return principal
        route = request.scope.get("route")
        async with transaction(runtime.sessions) as session:
            record_audit(
                session,
                principal=principal,
                action=f"{request.method} {getattr(route, 'path', request.url.path)}",
                resource_type="route",
                resource_id=None,
                outcome="denied",
                source=await client_source(request),
                details={"reason": f"requires one of the roles: {names}"},
            )
        raise AuthorizationError(f"Requires one of the roles: {names}")

    dependency.__name__ = f"require_audited_{'_'.join(sorted(r.value for r in roles))}"
    dependency.allowed_roles = frozenset(roles)  # type: ignore[attr-defined]
    return dependency


#: Reads: every authenticated member agency, co-chair, operations officer (and admin).
Reader = Annotated[Principal, Depends(require_roles(Role.member, Role.co_chair, Role.ops))]
#: Writes of activities: member agencies and co-chairs (on what they lead) and admins.
Writer = Annotated[Principal, Depends(_audited_roles(Role.member, Role.co_chair))]
#: The member directory's administration.
Admin = Annotated[Principal, Depends(_audited_roles(Role.admin))]
