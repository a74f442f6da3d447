"""Dependency aliases of the notifications service (and the common ones, re-exported)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from bali_common.auth import CurrentPrincipal, Principal, Role, require_roles
from bali_common.deps import RuntimeDep, SessionDep
from bali_common.events.notifications import Channel
from fastapi import Depends, Request

from bali_notifications.channels import ChannelSender
from bali_notifications.deliveries.dispatcher import Dispatcher
from bali_notifications.hub import NotificationHub
from bali_notifications.settings import NotificationsSettings
from bali_notifications.ssrf import EgressGuard

__all__ = [
    "CurrentPrincipal",
    "DeliveryViewer",
    "InboxReader",
    "Notifications",
    "NotificationsDep",
    "RuntimeDep",
    "SessionDep",
    "SubscriptionManager",
]


@dataclass(frozen=True)
class Notifications:
    """The service's own parts, built once per app in `create_app`."""

    settings: NotificationsSettings
    hub: NotificationHub
    guard: EgressGuard
    senders: Mapping[Channel, ChannelSender]
    dispatcher: Dispatcher


def get_notifications(request: Request) -> Notifications:
    parts = request.app.state.notifications
    assert isinstance(parts, Notifications)
    return parts


NotificationsDep = Annotated[Notifications, Depends(get_notifications)]
SubscriptionManager = Annotated[Principal, Depends(require_roles(Role.member, Role.co_chair))]
DeliveryViewer = Annotated[Principal, Depends(require_roles(Role.member, Role.co_chair, Role.ops))]
InboxReader = Annotated[Principal, Depends(require_roles(Role.member, Role.co_chair, Role.ops))]
