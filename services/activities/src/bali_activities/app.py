"""Composition root of the activities service: what it owns, publishes and consumes."""

from __future__ import annotations

from bali_common.runtime import ServiceDefinition, build_app
from fastapi import FastAPI

from bali_activities.settings import ActivitiesSettings


def create_app(settings: ActivitiesSettings | None = None) -> FastAPI:
    return build_app(
        ServiceDefinition(
            name="activities",
            title="Bali Process Activities API",
            description="Member directory and the cooperation activities logged against the 25 items of the 2023 Adelaide Strategy for Cooperation.",
            tables=[],
            routers=[],
        ),
        settings or ActivitiesSettings(),
    )
