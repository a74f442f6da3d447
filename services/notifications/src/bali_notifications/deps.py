"""Dependency aliases of the notifications service (and the common ones, re-exported)."""

from __future__ import annotations

from typing import Annotated

from bali_common.auth import CurrentPrincipal, Principal, Role, require_roles
from bali_common.deps import RuntimeDep, SessionDep
from fastapi import Depends

from bali_notifications.parts import NotificationParts

__all__ = [
    "CurrentPrincipal",
    "DeliveryViewer",
    "InboxReader",
    "PartsDep",
    "RuntimeDep",
    "SessionDep",
    "SubscriptionManager",
]


async def notification_parts(runtime: RuntimeDep) -> NotificationParts:
    return runtime.parts_as(NotificationParts)


PartsDep = Annotated[NotificationParts, Depends(notification_parts)]
SubscriptionManager = Annotated[Principal, Depends(require_roles(Role.member, Role.co_chair))]
DeliveryViewer = Annotated[Principal, Depends(require_roles(Role.member, Role.co_chair, Role.ops))]
InboxReader = Annotated[Principal, Depends(require_roles(Role.member, Role.co_chair, Role.ops))]
