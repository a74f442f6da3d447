"""Composition root of the consultation service: what it owns, publishes and consumes."""

from __future__ import annotations

from bali_common.runtime import ServiceDefinition, build_app
from fastapi import FastAPI

from bali_consultation.settings import ConsultationSettings


def create_app(settings: ConsultationSettings | None = None) -> FastAPI:
    return build_app(
        ServiceDefinition(
            name="consultation",
            title="Bali Process Consultation API",
            description="Emergency alerts through the Consultation Mechanism (strategy item 11): raised, acknowledged, escalated, convened and resolved.",
            tables=[],
            routers=[],
        ),
        settings or ConsultationSettings(),
    )
