"""Composition root of the notifications service: what it owns, publishes and consumes."""

from __future__ import annotations

from bali_common.runtime import ServiceDefinition, build_app
from fastapi import FastAPI

from bali_notifications.settings import NotificationsSettings


def create_app(settings: NotificationsSettings | None = None) -> FastAPI:
    return build_app(
        ServiceDefinition(
            name="notifications",
            title="Bali Process Notifications API",
            description="Delivers alert and activity events to the people who must act: email, signed webhooks and an in-app inbox.",
            tables=[],
            routers=[],
        ),
        settings or NotificationsSettings(),
    )
