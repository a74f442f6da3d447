"""The in-app inbox: delivering is storing the item, then pushing it to its owner's live streams."""

from __future__ import annotations

from datetime import datetime

from bali_notifications.channels import Notification, SendResult, Target, UnusableTarget
from bali_notifications.hub import NotificationHub
from bali_notifications.inbox.models import InboxItem, InboxItemPublic
from bali_notifications.subscriptions.models import Subscription


class InboxSender:
    """Never fails: the item is written with the attempt's record, in the same transaction."""

    def __init__(self, hub: NotificationHub) -> None:
        self._hub = hub

    async def check_target(self, target: Target) -> Target:
        if target.email is not None or target.url is not None:
            raise UnusableTarget("channel", "inbox subscriptions take neither email nor url")
        return target

    def address_of(self, subscription: Subscription) -> str:
        # The inbox of whoever subscribed, not of their whole member.
        return f"user:{subscription.created_by}"

    async def send(self, notification: Notification, *, now: datetime) -> SendResult:
        delivery = notification.job.delivery
        item = InboxItem(
            owner=delivery.recipient,
            delivery_id=delivery.id,
            event_type=delivery.event_type,
            title=notification.rendered.subject[:500],
            body=notification.rendered.summary,
            severity=delivery.severity,
            alert_id=delivery.alert_id,
            created_at=now,
        )

        def publish() -> None:
            self._hub.publish([InboxItemPublic.model_validate(item)])

        return SendResult(succeeded=True, latency_ms=0, stored=(item,), on_committed=publish)

    async def aclose(self) -> None:
        """Nothing stays open: the item goes through the dispatcher's transaction."""
