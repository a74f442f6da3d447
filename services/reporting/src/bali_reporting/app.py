"""Composition root of the reporting service: it publishes nothing and consumes every stream."""

from __future__ import annotations

from bali_common.runtime import ServiceDefinition, build_app
from fastapi import FastAPI
from sqlmodel import SQLModel

from bali_reporting import consumers, migrations
from bali_reporting.models import EventTally
from bali_reporting.routes import router
from bali_reporting.settings import ReportingSettings

#: The tables of the reporting database besides the plumbing; its migrations cover both.
MODELS: tuple[type[SQLModel], ...] = (EventTally,)


def create_app(settings: ReportingSettings | None = None) -> FastAPI:
    return build_app(
        ServiceDefinition(
            name="reporting",
            title="Bali Process Reporting API",
            description=(
                "Read models built from every topic: coverage, trends, alert response times "
                "and pipeline health."
            ),
            models=MODELS,
            migrations=migrations.DIRECTORY,
            routers=[router],
            consumer_groups=[consumers.handlers.consumer_group("reporting.pipeline")],
        ),
        settings or ReportingSettings(),
    )
