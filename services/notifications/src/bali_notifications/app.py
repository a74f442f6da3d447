"""Composition root of the notifications service: what it owns, publishes, consumes and runs."""

from __future__ import annotations

from datetime import timedelta

from bali_common.events import Stream
from bali_common.events.notifications import Channel
from bali_common.http.audit import AuditRecord
from bali_common.http.idempotency import IdempotencyRecord
from bali_common.runtime import ServiceDefinition, ServiceRuntime, build_app
from fastapi import FastAPI
from sqlmodel import SQLModel

from bali_notifications import audience, migrations, secrets_at_rest
from bali_notifications.channels import ChannelSender
from bali_notifications.channels.email import EmailSender
from bali_notifications.channels.inbox import InboxSender
from bali_notifications.channels.webhook import WebhookSender
from bali_notifications.consumers import PLANNING_GROUP, notification_handlers
from bali_notifications.deliveries import digests
from bali_notifications.deliveries.dispatcher import Dispatcher
from bali_notifications.deliveries.models import Delivery, DeliveryAttempt, SourceEvent
from bali_notifications.deliveries.routes import router as deliveries_router
from bali_notifications.directory import MemberEntry
from bali_notifications.hub import NotificationHub
from bali_notifications.inbox.models import InboxItem
from bali_notifications.inbox.routes import router as inbox_router
from bali_notifications.metrics import NotificationMetrics
from bali_notifications.parts import NotificationParts
from bali_notifications.planning import AlertAffectedMember, AlertState
from bali_notifications.routing_cache import RoutingCache
from bali_notifications.settings import NotificationsSettings
from bali_notifications.ssrf import EgressGuard, Resolver
from bali_notifications.subscriptions.models import Subscription
from bali_notifications.subscriptions.routes import router as subscriptions_router

#: The tables of the notifications database besides the plumbing; its migrations cover both.
MODELS: tuple[type[SQLModel], ...] = (
    MemberEntry,
    AlertState,
    AlertAffectedMember,
    Subscription,
    SourceEvent,
    Delivery,
    DeliveryAttempt,
    InboxItem,
    IdempotencyRecord,
    AuditRecord,
)


def create_app(
    settings: NotificationsSettings | None = None, *, resolver: Resolver | None = None
) -> FastAPI:
    """`resolver` replaces the system DNS resolver (tests of DNS rebinding only)."""
    settings = settings or NotificationsSettings()
    # The consumers need the hub and the senders before the runtime exists: they plan for
    # the channels the dispatcher sends on, and wake it once their plans commit.
    hub = NotificationHub()
    guard = EgressGuard(settings.webhook_allow_list, resolver)
    box = secrets_at_rest.box_for(settings)
    senders = channel_senders(settings=settings, guard=guard, hub=hub, box=box)
    cache = RoutingCache(settings.routing_cache_ttl_s)
    handlers = notification_handlers(
        hub=hub,
        senders=senders,
        catch_up_window=timedelta(seconds=settings.alert_catch_up_window_s),
        cache=cache,
    )

    def parts(runtime: ServiceRuntime) -> NotificationParts:
        dispatcher = Dispatcher(
            settings=settings,
            sessions=runtime.sessions,
            hub=hub,
            metrics=NotificationMetrics(runtime.metrics.registry),
            senders=senders,
        )
        return NotificationParts(
            settings=settings,
            hub=hub,
            guard=guard,
            senders=senders,
            dispatcher=dispatcher,
            secrets=box,
            routing=cache,
        )

    return build_app(
        ServiceDefinition(
            name="notifications",
            title="Bali Process Notifications API",
            description=(
                "Delivers alert and activity events to the people who must act: email, "
                "signed webhooks and an in-app inbox."
            ),
            models=MODELS,
            migrations=migrations.DIRECTORY,
            routers=[subscriptions_router, deliveries_router, inbox_router],
            publishes=[Stream.notifications],
            consumer_groups=[
                # One consumer for the three streams: one fetch loop, not three, at rest.
                handlers.consumer_group(PLANNING_GROUP),
            ],
            parts=parts,
            on_startup=[fill_in_alert_audiences, seal_webhook_secrets],
            background=[deliver_notifications, send_daily_digests],
            openapi_tags=[
                {"name": "subscriptions", "description": "Who wants which events, and how"},
                {"name": "deliveries", "description": "Every notification and its attempts"},
                {"name": "inbox", "description": "In-app notifications and their live stream"},
            ],
        ),
        settings,
    )


def channel_senders(
    *,
    settings: NotificationsSettings,
    guard: EgressGuard,
    hub: NotificationHub,
    box: secrets_at_rest.SecretBox,
) -> dict[Channel, ChannelSender]:
    """The sender of each channel kind: adding a channel is its module and a line here."""
    return {
        Channel.email: EmailSender(settings),
        Channel.webhook: WebhookSender(settings, guard, box),
        Channel.inbox: InboxSender(hub),
    }


async def fill_in_alert_audiences(runtime: ServiceRuntime) -> None:
    """Alerts kept before the visibility rule get their audience before anyone reads."""
    await audience.backfill(runtime.sessions)


async def seal_webhook_secrets(runtime: ServiceRuntime) -> None:
    """Secrets kept in plain text (before they were sealed) or under an older key are sealed
    under the newest key before the service serves (`python -m bali_notifications
    reseal-webhook-secrets` does the same on demand)."""
    parts = runtime.parts_as(NotificationParts)
    await secrets_at_rest.reseal(runtime.sessions, parts.secrets)


async def deliver_notifications(runtime: ServiceRuntime) -> None:
    await runtime.parts_as(NotificationParts).dispatcher.run()


async def send_daily_digests(runtime: ServiceRuntime) -> None:
    parts = runtime.parts_as(NotificationParts)
    await digests.run(sessions=runtime.sessions, hub=parts.hub, settings=parts.settings)
