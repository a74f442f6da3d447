"""Composition root of the notifications service: what it owns, publishes and consumes."""

from __future__ import annotations

from datetime import timedelta

from bali_common.events import Stream
from bali_common.http.audit import AuditRecord
from bali_common.http.idempotency import IdempotencyRecord
from bali_common.runtime import ServiceDefinition, ServiceRuntime, build_app, runtime_of
from fastapi import FastAPI
from sqlmodel import SQLModel

from bali_notifications import migrations
from bali_notifications.consumers import notification_handlers
from bali_notifications.deps import Notifications
from bali_notifications.dispatcher import Dispatcher
from bali_notifications.hub import NotificationHub
from bali_notifications.metrics import NotificationMetrics
from bali_notifications.models import MODELS as NOTIFICATION_MODELS
from bali_notifications.routes import deliveries_router, inbox_router, subscriptions_router
from bali_notifications.settings import NotificationsSettings
from bali_notifications.ssrf import EgressGuard, Resolver

#: The tables of the notifications database besides the plumbing; its migrations cover both.
MODELS: tuple[type[SQLModel], ...] = (*NOTIFICATION_MODELS, IdempotencyRecord, AuditRecord)


def create_app(
    settings: NotificationsSettings | None = None, *, resolver: Resolver | None = None
) -> FastAPI:
    """`resolver` replaces the system DNS resolver (tests of DNS rebinding only)."""
    settings = settings or NotificationsSettings()
    hub = NotificationHub()
    guard = EgressGuard(settings.webhook_allow_list, resolver)
    handlers = notification_handlers(
        hub=hub, catch_up_window=timedelta(seconds=settings.alert_catch_up_window_s)
    )

    async def deliver_notifications(_runtime: ServiceRuntime) -> None:
        await dispatcher.run()

    async def send_daily_digests(_runtime: ServiceRuntime) -> None:
        await dispatcher.run_digests()

    app = build_app(
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
                handlers.consumer_group("notifications.members", streams=[Stream.members]),
                handlers.consumer_group("notifications.alerts", streams=[Stream.alerts]),
                handlers.consumer_group("notifications.activities", streams=[Stream.activities]),
            ],
            background=[deliver_notifications, send_daily_digests],
            openapi_tags=[
                {"name": "subscriptions", "description": "Who wants which events, and how"},
                {"name": "deliveries", "description": "Every notification and its attempts"},
                {"name": "inbox", "description": "In-app notifications and their live stream"},
            ],
        ),
        settings,
    )
    runtime = runtime_of(app)
    dispatcher = Dispatcher(
        settings=settings,
        sessions=runtime.sessions,
        hub=hub,
        metrics=NotificationMetrics(runtime.metrics.registry),
        guard=guard,
    )
    app.state.notifications = Notifications(
        settings=settings, hub=hub, guard=guard, dispatcher=dispatcher
    )
    return app
