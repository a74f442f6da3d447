"""Composition root of the reporting service: it publishes nothing and consumes every stream."""

from __future__ import annotations

from bali_common.runtime import ServiceDefinition, ServiceRuntime, build_app
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from sqlmodel import SQLModel

from bali_reporting import consumers, migrations
from bali_reporting.dashboard import routes as dashboard
from bali_reporting.dashboard.signin import SignInRequired, to_sign_in
from bali_reporting.parts import Clock, ReportingParts, parts_factory, utc_now
from bali_reporting.projections import PROJECTION_MODELS
from bali_reporting.rebuild.models import RebuildRun
from bali_reporting.rebuild.pausing import ReportingReplica
from bali_reporting.routes import admin, exports, progress, reports
from bali_reporting.settings import ReportingSettings

#: The tables of the reporting database besides the plumbing; its migrations cover both.
MODELS: tuple[type[SQLModel], ...] = (*PROJECTION_MODELS, RebuildRun, ReportingReplica)


async def rebuild_worker(runtime: ServiceRuntime) -> None:
    """Runs the rebuilds requested at /v1/admin/rebuild, one at a time."""
    await runtime.parts_as(ReportingParts).rebuilds.serve(runtime)


def create_app(settings: ReportingSettings | None = None, *, clock: Clock = utc_now) -> FastAPI:
    settings = settings or ReportingSettings()
    group = consumers.handlers.consumer_group(consumers.GROUP)
    app = build_app(
        ServiceDefinition(
            name="reporting",
            title="Bali Process Reporting API",
            description=(
                "Read models built from every topic: strategy coverage, activity trends, "
                "indicators, the alert board, response times, delivery and pipeline health, "
                "and alert follow-up; each report as JSON and as CSV or XLSX; the yearly progress "
                "report as HTML or PDF. The operations dashboard is at `/` (sign in at "
                "`/sign-in` with a bearer token)."
            ),
            models=MODELS,
            migrations=migrations.DIRECTORY,
            routers=[
                reports.router,
                progress.router,
                exports.router,
                reports.legacy,
                admin.router,
                dashboard.router,
            ],
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

    async def sign_in_again(request: Request, refused: Exception) -> RedirectResponse:
        assert isinstance(refused, SignInRequired)
        return to_sign_in(request, refused)

    app.add_exception_handler(SignInRequired, sign_in_again)
    return app
