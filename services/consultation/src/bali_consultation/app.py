"""Composition root of the consultation service: what it owns, publishes and consumes."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC

from bali_common.db import utcnow
from bali_common.events.topics import Stream
from bali_common.http.audit import AuditRecord
from bali_common.http.idempotency import IdempotencyRecord
from bali_common.runtime import ServiceDefinition, ServiceRuntime, build_app, runtime_of
from fastapi import FastAPI
from sqlmodel import SQLModel

from bali_consultation import consumers
from bali_consultation.alerts import escalation
from bali_consultation.alerts.models import (
    Alert,
    AlertAffectedMember,
    AlertTimelineEntry,
    EscalationTimer,
    UsedLinkToken,
)
from bali_consultation.alerts.routes import router
from bali_consultation.deps import Clock
from bali_consultation.directory import DirectoryMember
from bali_consultation.metrics import ResponseMetrics
from bali_consultation.settings import ConsultationSettings

log = logging.getLogger(__name__)

MODELS: list[type[SQLModel]] = [
    Alert,
    AlertAffectedMember,
    AlertTimelineEntry,
    EscalationTimer,
    UsedLinkToken,
    DirectoryMember,
    IdempotencyRecord,
    AuditRecord,
]


def create_app(settings: ConsultationSettings | None = None, *, clock: Clock = utcnow) -> FastAPI:
    """`clock` is injected so that tests drive escalation and link expiry without sleeping."""
    settings = settings or ConsultationSettings()

    async def escalation_loop(runtime: ServiceRuntime) -> None:
        """Timers are rows: a restarted or second replica picks up exactly what is due."""
        if not settings.escalation_loop_enabled:
            return
        replica = f"{settings.relay_id or escalation.default_replica_id()}:escalations"
        while True:
            try:
                fired = await escalation.fire_due(
                    sessions=runtime.sessions,
                    now=clock().astimezone(UTC),
                    batch_size=settings.escalation_batch_size,
                    replica=replica,
                )
                metrics.escalations.labels("unacknowledged_timeout").inc(len(fired))
            except Exception:
                log.exception("escalation cycle failed; retrying")
            await asyncio.sleep(settings.escalation_poll_interval_s)

    app = build_app(
        ServiceDefinition(
            name="consultation",
            title="Bali Process Consultation API",
            description="Emergency alerts through the Consultation Mechanism (strategy item "
            "11): raised, acknowledged, escalated, convened and resolved, with CAP 1.2 "
            "documents and an Atom feed of public alerts.",
            models=MODELS,
            routers=[router],
            publishes=[Stream.alerts],
            consumer_groups=[consumers.handlers.consumer_group("consultation.members")],
            background=[escalation_loop],
        ),
        settings,
    )
    # Started by the lifespan, after this: the loop above reads `metrics` only then.
    metrics = ResponseMetrics(runtime_of(app).metrics.registry)
    app.state.response_metrics = metrics
    app.state.clock = clock
    return app
