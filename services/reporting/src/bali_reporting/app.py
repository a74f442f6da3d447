"""Composition root of the reporting service: it publishes nothing and consumes every stream."""

from __future__ import annotations

from bali_common.runtime import ServiceDefinition, ServiceRuntime, build_app
from fastapi import FastAPI
from sqlmodel import SQLModel

from bali_reporting import consumers, migrations
from bali_reporting.parts import Clock, ReportingParts, parts_factory, utc_now
from bali_reporting.projections import PROJECTION_MODELS
from bali_reporting.rebuild.models import RebuildRun
from bali_reporting.rebuild.pausing import ReportingReplica
from bali_reporting.routes import admin, exports, reports
from bali_reporting.settings import ReportingSettings

#: The tables of the reporting database besides the plumbing; its migrations cover both.
MODELS: tuple[type[SQLModel], ...] = (*PROJECTION_MODELS, RebuildRun, ReportingReplica)


async def rebuild_worker(runtime: ServiceRuntime) -> None:
    """Runs the rebuilds requested at /v1/admin/rebuild, one at a time."""
    await runtime.parts_as(ReportingParts).rebuilds.serve(runtime)


def create_app(settings: ReportingSettings | None = None, *, clock: Clock = utc_now) -> FastAPI:
    settings = settings or ReportingSettings()
    group = consumers.handlers.consumer_group(consumers.GROUP)
    return build_app(
        ServiceDefinition(
            name="reporting",
            title="Bali Process Reporting API",
            description=(
                "Read models built from every topic: strategy coverage, activity trends, "
                "indicators, the alert board, response times, delivery and pipeline health, "
                "and alert follow-up; each report as JSON and as CSV or XLSX."
            ),
            models=MODELS,
            migrations=migrations.DIRECTORY,
            routers=[reports.router, exports.router, reports.legacy, admin.router],
            consumer_groups=[group],
            background=[rebuild_worker],
            parts=parts_factory(settings, group, clock),
            openapi_tags=[
                {"name": "reports", "description": "The reports as JSON, filtered and paginated"},
                {"name": "exports", "description": "The same reports as CSV or XLSX"},
                {"name": "operations", "description": "Rebuilds and dead letters"},
            ],
        ),
        settings,
    )
