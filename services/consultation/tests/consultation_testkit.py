"""Helpers of the consultation tests: a service under test, a clock the tests drive, requests,
and members published to its directory."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from bali_common.events import STREAM_TOPICS, CloudEvent, Stream
from bali_common.events.members import FocalPointData, MemberKind, MemberRegistered
from bali_common.messaging.outbox import OutboxMessage, outbox_backlog
from bali_consultation.alerts.schemas import ALERT_EXAMPLE
from bali_consultation.app import create_app
from bali_consultation.directory import DirectoryMember
from bali_consultation.settings import ConsultationSettings
from bali_devkit.testing.plugin import (
    SettingsFactory,
    TokenBook,
    eventually,
    running,
    settings_factory_for,
)
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
    """The API's documented example (an Extreme public alert), as a new situation."""
    return {**ALERT_EXAMPLE, "dedup_key": f"situation-{uuid4().hex[:12]}", **overrides}


@dataclass
class Service:
    app: FastAPI
    client: httpx.AsyncClient
    settings: ConsultationSettings
    clock: FakeClock
    #: Bearer headers: `auth("MY")` for a member, `auth.co_chair("AU")`, `auth.admin()`.
    auth: TokenBook

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
        headers = auth.pop("headers", None) or self.auth.co_chair()
        return await self.client.post(
            f"/v1/alerts/{alert_id}/{action}", json=body or {}, headers=headers
        )

    async def get(self, alert_id: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
        response = await self.client.get(
            f"/v1/alerts/{alert_id}", headers=headers or self.auth.co_chair()
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def timeline(self, alert_id: str) -> list[dict[str, Any]]:
        response = await self.client.get(
            f"/v1/alerts/{alert_id}/timeline", headers=self.auth.co_chair()
        )
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

    async def outbox_drained(self) -> bool:
        return await outbox_backlog(self.sessions) == 0


def member_snapshot(
    member_id: str, *, co_chair: bool = False, email: str | None = None, version: int = 1
) -> MemberRegistered:
    focal_points = (
        [
            FocalPointData(
                focal_point_id=f"{member_id}-1", name=f"Duty officer {member_id}", email=email
            )
        ]
        if email
        else []
    )
    return MemberRegistered(
        member_id=member_id,
        name=f"Member {member_id}",
        kind=MemberKind.member_state,
        is_co_chair=co_chair,
        focal_points=focal_points,
        version=version,
    )


async def publish_members(service: Service, snapshots: list[Any]) -> list[CloudEvent]:
    """Publish as the activities service does: real records on the members topic."""
    settings = service.settings
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    events = []
    try:
        topic = STREAM_TOPICS[Stream.members].qualified(settings.kafka_topic_prefix)
        for snapshot in snapshots:
            event = CloudEvent.of(snapshot, source="/bali/activities", subject=snapshot.member_id)
            events.append(event)
            await producer.send_and_wait(
                topic, event.kafka_value(), key=event.kafka_key(), headers=event.kafka_headers()
            )
    finally:
        await producer.stop()
    return events


async def directory_members(service: Service) -> dict[str, DirectoryMember]:
    async with service.sessions() as session:
        return {m.member_id: m for m in (await session.exec(select(DirectoryMember))).all()}


async def add_to_directory(service: Service, snapshots: list[MemberRegistered]) -> None:
    """Publish member snapshots and wait until the service's directory holds each of them."""
    await publish_members(service, snapshots)

    async def known() -> bool:
        return {s.member_id for s in snapshots} <= set(await directory_members(service))

    await eventually(known)


async def consultation_settings(factory: SettingsFactory, **overrides: Any) -> ConsultationSettings:
    """Fresh database and topics; the escalation loop, where enabled, polls often."""
    return await factory(ConsultationSettings, **{"escalation_poll_interval_s": 0.05, **overrides})


@contextlib.asynccontextmanager
async def started(
    settings: ConsultationSettings, clock: FakeClock, *, wait_for_messaging: bool = True
) -> AsyncIterator[Service]:
    app = create_app(settings, clock=clock)
    async with running(app, wait_for_messaging=wait_for_messaging) as client:
        yield Service(app, client, settings, clock, TokenBook(settings))


@contextlib.asynccontextmanager
async def module_service(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, **overrides: Any
) -> AsyncIterator[Service]:
    """One service for a whole test module: starting consumers costs seconds."""
    directory = tmp_path_factory.mktemp("consultation")
    async with settings_factory_for(kafka_bootstrap, directory) as factory:
        settings = await consultation_settings(factory, **overrides)
        async with started(settings, FakeClock()) as service:
            yield service
