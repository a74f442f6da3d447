"""Composition root of the consultation service: what it owns, publishes, consumes and runs."""

from __future__ import annotations

from bali_common.db import utcnow
from bali_common.events.topics import Stream
from bali_common.http.audit import AuditRecord
from bali_common.http.idempotency import IdempotencyRecord
from bali_common.runtime import ServiceDefinition, ServiceRuntime, build_app
from fastapi import FastAPI
from sqlmodel import SQLModel

from bali_consultation import consumers, migrations
from bali_consultation.alerts import escalation, routes, step_routes
from bali_consultation.alerts.models import (
    Alert,
    AlertAffectedMember,
    AlertTimelineEntry,
    EscalationTimer,
    UsedLinkToken,
)
from bali_consultation.directory import DirectoryMember
from bali_consultation.metrics import ResponseMetrics
from bali_consultation.parts import Clock, ConsultationParts
from bali_consultation.settings import ConsultationSettings

#: The tables of the consultation database besides the plumbing; its migrations cover both.
MODELS: tuple[type[SQLModel], ...] = (
    Alert,
    AlertAffectedMember,
    AlertTimelineEntry,
    EscalationTimer,
    UsedLinkToken,
    DirectoryMember,
    IdempotencyRecord,
    AuditRecord,
)


def create_app(settings: ConsultationSettings | None = None, *, clock: Clock = utcnow) -> FastAPI:
    settings = settings or ConsultationSettings()

    def parts(runtime: ServiceRuntime) -> ConsultationParts:
        return ConsultationParts(
            settings=settings, clock=clock, metrics=ResponseMetrics(runtime.metrics.registry)
        )

    return build_app(
        ServiceDefinition(
            name="consultation",
            title="Bali Process Consultation API",
            description="Emergency alerts through the Consultation Mechanism (strategy item "
            "11): raised, acknowledged, escalated, convened and resolved, with CAP 1.2 "
            "documents and an Atom feed of public alerts.",
            models=MODELS,
            migrations=migrations.DIRECTORY,
            routers=[routes.router, step_routes.router],
            publishes=[Stream.alerts],
            consumer_groups=[consumers.handlers.consumer_group("consultation.members")],
            background=[escalation.timer_loop],
            parts=parts,
        ),
        settings,
    )
