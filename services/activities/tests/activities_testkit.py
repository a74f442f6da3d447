"""Helpers of the activities tests: a running service, tokens, activity bodies, events read back."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from uuid import uuid4

import httpx
from bali_activities.app import create_app
from bali_activities.settings import ActivitiesSettings
from bali_common.events import STREAM_TOPICS, CloudEvent, Stream
from bali_common.http.audit import AuditRecord
from bali_common.http.concurrency import etag_of
from bali_devkit.testing.plugin import TokenBook, read_topic, running
from fastapi import FastAPI
from sqlmodel import col, select

TODAY = date.today()
PAST = TODAY - timedelta(days=60)
FUTURE = TODAY + timedelta(days=30)


def activity_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": f"Regional workshop on online scam operations {uuid4().hex[:6]}",
        "description": "Two-day workshop for law enforcement and victim-support officers.",
        "items": [3, 12],
        "type": "workshop",
        "status": "completed",
        "participants": [
            {"member_id": "TH", "role": "co_lead"},
            {"member_id": "IOM", "role": "participant"},
        ],
        "planned_start": PAST.isoformat(),
        "planned_end": (PAST + timedelta(days=1)).isoformat(),
        "actual_start": PAST.isoformat(),
        "actual_end": (PAST + timedelta(days=1)).isoformat(),
        "countries": ["TH"],
        "outputs": [{"indicator": "officers trained", "value": 40, "by_sex": {"female": 18}}],
        "tags": ["Online scam operations", "digital literacy"],
        "documents": [{"title": "Report", "url": "https://docs.example/report.pdf"}],
    }
    body.update(overrides)
    return body


@dataclass
class Service:
    app: FastAPI
    client: httpx.AsyncClient
    settings: ActivitiesSettings
    tokens: TokenBook

    @property
    def sessions(self) -> Any:
        return self.app.state.runtime.sessions

    async def create(self, member: str = "MY", **overrides: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/activities", json=activity_body(**overrides), headers=self.tokens(member)
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def get(self, activity_id: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.client.get(
            f"/v1/activities/{activity_id}", headers=headers or self.tokens.admin()
        )

    async def patch(
        self,
        activity_id: str,
        body: dict[str, Any],
        *,
        version: int,
        member: str = "MY",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        return await self.client.patch(
            f"/v1/activities/{activity_id}",
            json=body,
            headers={**(headers or self.tokens(member)), "If-Match": etag_of(version)},
        )

    async def audit_rows(self, resource_id: str | None = None) -> list[AuditRecord]:
        async with self.sessions() as session:
            query = select(AuditRecord).order_by(col(AuditRecord.id))
            if resource_id is not None:
                query = query.where(AuditRecord.resource_id == resource_id)
            return list((await session.exec(query)).all())

    async def events(self, stream: Stream, *, subject: str, expected: int) -> list[CloudEvent]:
        """The events published about one aggregate, read back from the broker."""
        return await read_topic(
            self.settings, STREAM_TOPICS[stream], expected=expected, subject=subject
        )


@contextlib.asynccontextmanager
async def started(settings: ActivitiesSettings) -> AsyncIterator[Service]:
    app = create_app(settings)
    async with running(app) as client:
        yield Service(app=app, client=client, settings=settings, tokens=TokenBook(settings))
