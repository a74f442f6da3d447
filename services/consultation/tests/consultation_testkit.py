"""Helpers of the consultation tests: a service under test, a clock the tests drive, requests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from bali_common.auth import Role
from bali_common.messaging.outbox import OutboxMessage
from bali_common.testing.plugin import FAST_KAFKA, DatabaseFactory, bearer, running
from bali_consultation.app import create_app
from bali_consultation.settings import ConsultationSettings
from fastapi import FastAPI
from sqlmodel import col, select

#: Whole seconds plus a fraction, so that CAP's "no fractional seconds" rule is exercised.
CLOCK_START = datetime(2026, 11, 28, 16, 30, 0, 123456, tzinfo=UTC)


@dataclass
class FakeClock:
    """The service's `now`: tests move it instead of sleeping."""

    current: datetime = CLOCK_START

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current


def alert_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "situation_type": "maritime_distress",
        "title": "Two boats adrift south of Rote Island",
        "description": "Two wooden boats with about 120 people adrift for two days.",
        "severity": "Extreme",
        "urgency": "Immediate",
        "certainty": "Observed",
        "affected_members": ["ID", "AU"],
        "location": {
            "place_names": ["Timor Sea", "south of Rote Island"],
            "point": {"lat": -11.2, "lon": 123.1, "radius_km": 25},
        },
        "people_affected": {"estimate": 120, "women": 30, "children": 40},
        "requested_actions": ["Search and rescue coordination"],
        "sensitivity": "public",
        "dedup_key": f"situation-{uuid4().hex[:12]}",
    }
    body.update(overrides)
    return body


@dataclass
class Service:
    app: FastAPI
    client: httpx.AsyncClient
    settings: ConsultationSettings
    clock: FakeClock
    tokens: dict[tuple[str | None, tuple[Role, ...], str | None], dict[str, str]] = field(
        default_factory=dict
    )

    def auth(
        self,
        member: str | None = "MY",
        roles: Sequence[Role] = (Role.member,),
        subject: str | None = None,
    ) -> dict[str, str]:
        key = (member, tuple(roles), subject)
        if key not in self.tokens:
            self.tokens[key] = bearer(self.settings, member=member, roles=roles, subject=subject)
        return self.tokens[key]

    def co_chair(self, member: str = "ID") -> dict[str, str]:
        return self.auth(member, (Role.co_chair,), subject=f"co-chair-of-{member}")

    @property
    def sessions(self) -> Any:
        return self.app.state.runtime.sessions

    async def raise_alert(self, member: str = "MY", **overrides: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/alerts", json=alert_body(**overrides), headers=self.auth(member)
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def step(
        self, alert_id: str, action: str, body: dict[str, Any] | None = None, **auth: Any
    ) -> httpx.Response:
        headers = auth.pop("headers", None) or self.co_chair()
        return await self.client.post(
            f"/v1/alerts/{alert_id}/{action}", json=body or {}, headers=headers
        )

    async def get(self, alert_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        response = await self.client.get(
            f"/v1/alerts/{alert_id}", headers=headers or self.co_chair()
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def timeline(self, alert_id: str) -> list[dict[str, Any]]:
        response = await self.client.get(f"/v1/alerts/{alert_id}/timeline", headers=self.co_chair())
        assert response.status_code == 200, response.text
        return list(response.json()["items"])

    async def staged_events(self, alert_id: str) -> list[str]:
        """Types of the events staged in the outbox for one alert, in order."""
        async with self.sessions() as session:
            rows = await session.exec(
                select(OutboxMessage.event_type)
                .where(OutboxMessage.key == alert_id)
                .order_by(col(OutboxMessage.id))
            )
            return list(rows.all())


async def consultation_settings(
    *, data_dir: Path, kafka_bootstrap: str, databases: DatabaseFactory, **overrides: Any
) -> ConsultationSettings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "kafka_bootstrap_servers": kafka_bootstrap,
        "kafka_topic_prefix": f"t{uuid4().hex[:10]}.",
        **FAST_KAFKA,
        "escalation_poll_interval_s": 0.05,
    }
    values.update(overrides)
    if "database_url" not in values:
        values["database_url"] = await databases.create("consultation")
    return ConsultationSettings(**values)


@contextlib.asynccontextmanager
async def started(
    settings: ConsultationSettings, clock: FakeClock, *, wait_for_messaging: bool = True
) -> AsyncIterator[Service]:
    app = create_app(settings, clock=clock)
    async with running(app, wait_for_messaging=wait_for_messaging) as client:
        yield Service(app=app, client=client, settings=settings, clock=clock)


@contextlib.asynccontextmanager
async def module_service(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, **overrides: Any
) -> AsyncIterator[Service]:
    """One service for a whole test module: starting consumers costs seconds."""
    directory = tmp_path_factory.mktemp("consultation")
    databases = DatabaseFactory(directory)
    try:
        settings = await consultation_settings(
            data_dir=directory, kafka_bootstrap=kafka_bootstrap, databases=databases, **overrides
        )
        async with started(settings, FakeClock()) as service:
            yield service
    finally:
        await databases.drop_all()
