"""Composition root of the activities service: what it owns, publishes and consumes."""

from __future__ import annotations

from bali_common.events.topics import Stream
from bali_common.http.audit import AuditRecord
from bali_common.http.idempotency import IdempotencyRecord
from bali_common.runtime import ServiceDefinition, ServiceRuntime, build_app
from fastapi import FastAPI
from sqlmodel import SQLModel

from bali_activities import migrations
from bali_activities.activities.models import Activity, ActivityVersion
from bali_activities.activities.routes import router as activities_router
from bali_activities.members.models import FocalPoint, Member
from bali_activities.members.reference import seed_reference_members
from bali_activities.members.routes import router as members_router
from bali_activities.settings import ActivitiesSettings

#: The tables of the activities database besides the plumbing; its migrations cover both.
MODELS: tuple[type[SQLModel], ...] = (
    Member,
    FocalPoint,
    Activity,
    ActivityVersion,
    AuditRecord,
    IdempotencyRecord,
)


def create_app(settings: ActivitiesSettings | None = None) -> FastAPI:
    settings = settings or ActivitiesSettings()

    async def seed_members(runtime: ServiceRuntime) -> None:
        """First start: the directory is empty, so load the Bali Process membership."""
        if settings.seed_reference_members:
            await seed_reference_members(sessions=runtime.sessions)

    return build_app(
        ServiceDefinition(
            name="activities",
            title="Bali Process Activities API",
            description=(
                "Member directory and the cooperation activities logged against the 25 items "
                "of the 2023 Adelaide Strategy for Cooperation."
            ),
            models=MODELS,
            migrations=migrations.DIRECTORY,
            routers=[members_router, activities_router],
            publishes=[Stream.members, Stream.activities],
            on_startup=[seed_members],
            openapi_tags=[
                {"name": "members", "description": "The member directory and its focal points"},
                {"name": "activities", "description": "Cooperation activities and their history"},
            ],
        ),
        settings,
    )
