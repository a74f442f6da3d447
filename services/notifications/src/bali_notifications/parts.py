"""The service's own parts, built by the composition root once the runtime exists."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bali_common.events.notifications import Channel

from bali_notifications.channels import ChannelSender
from bali_notifications.deliveries.dispatcher import Dispatcher
from bali_notifications.hub import NotificationHub
from bali_notifications.routing_cache import RoutingCache
from bali_notifications.secrets_at_rest import SecretBox
from bali_notifications.settings import NotificationsSettings
from bali_notifications.ssrf import EgressGuard


@dataclass(frozen=True)
class NotificationParts:
    """Read through `runtime.parts_as(NotificationParts)`."""

    settings: NotificationsSettings
    hub: NotificationHub
    guard: EgressGuard
    senders: Mapping[Channel, ChannelSender]
    dispatcher: Dispatcher
    #: Seals and opens the webhook signing secrets stored with the subscriptions.
    secrets: SecretBox
    #: The directory and subscriptions as planning reads them between their changes.
    routing: RoutingCache
