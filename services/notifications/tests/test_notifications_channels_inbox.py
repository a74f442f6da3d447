"""The inbox channel: nothing to address but a user; the item is stored, then pushed live."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from bali_notifications.channels import Notification, Target, UnusableTarget
from bali_notifications.channels.inbox import InboxSender
from bali_notifications.deliveries.models import Delivery, DeliveryJob, SourceEvent
from bali_notifications.hub import NotificationHub
from bali_notifications.inbox.models import InboxItem
from bali_notifications.rendering import Rendered
from bali_notifications.subscriptions.models import Subscription

NOW = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)


async def test_an_inbox_subscription_takes_neither_address_nor_url() -> None:
    sender = InboxSender(NotificationHub())
    assert await sender.check_target(Target()) == Target()
    for unusable in (Target(email="a@b.example"), Target(url="https://a.example/")):
        with pytest.raises(UnusableTarget) as refused:
            await sender.check_target(unusable)
        assert refused.value.field == "channel"
    mine = Subscription(created_by="mei", member_id="MY", name="mine", channel="inbox")
    assert sender.address_of(mine) == "user:mei", "the subscriber's own inbox, not its member's"


async def test_sending_stores_the_item_and_pushes_it_live_once_committed() -> None:
    hub = NotificationHub()
    sender = InboxSender(hub)
    delivery = Delivery(
        source_event_id="evt-1",
        event_type="alert.raised",
        channel="inbox",
        recipient="member:MY",
        alert_id="alert-1",
        severity="Extreme",
        reason="affected_member",
    )
    source = SourceEvent(
        event_id="evt-1", event_type="alert.raised", subject="alert-1", occurred_at=NOW
    )
    rendered = Rendered(
        subject="[EXTREME] Alert raised: " + "x" * 600, lines=[], summary="Sinking."
    )
    notification = Notification(
        job=DeliveryJob(delivery=delivery, source=source, subscription=None), rendered=rendered
    )

    async with hub.listen(["member:MY"]) as queue:
        result = await sender.send(notification, now=NOW)
        assert result.succeeded
        [item] = result.stored
        assert isinstance(item, InboxItem)
        assert (item.owner, item.delivery_id, item.alert_id, item.severity) == (
            "member:MY",
            delivery.id,
            "alert-1",
            "Extreme",
        )
        assert (len(item.title), item.body, item.created_at) == (500, "Sinking.", NOW)
        assert queue.empty(), "nothing is pushed before the item is committed"
        item.id = 7  # as the database assigns it when the attempt's record commits
        assert result.on_committed is not None
        result.on_committed()
        pushed = queue.get_nowait()
    assert pushed is not None
    assert (pushed.id, pushed.owner, pushed.read) == (7, "member:MY", False)
