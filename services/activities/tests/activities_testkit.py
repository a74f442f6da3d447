"""Helpers of the activities tests: a running service, tokens, activity bodies, events read back."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from bali_activities.app import create_app
from bali_activities.settings import ActivitiesSettings
from bali_common.auth import Role
from bali_common.events import STREAM_TOPICS, CloudEvent, Stream
from bali_common.http.audit import AuditRecord
from bali_common.testing.plugin import FAST_KAFKA, DatabaseFactory, bearer, running
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
    _tokens: dict[tuple[str | None, tuple[Role, ...], str | None], dict[str, str]] = field(
        default_factory=dict
    )

    def auth(
        self,
        member: str | None = "MY",
        roles: Sequence[Role] = (Role.member,),
        subject: str | None = None,
    ) -> dict[str, str]:
        key = (member, tuple(roles), subject)
        if key not in self._tokens:
            self._tokens[key] = bearer(self.settings, member=member, roles=roles, subject=subject)
        return self._tokens[key]

    def admin(self) -> dict[str, str]:
        return self.auth(None, (Role.admin,), subject="platform-admin")

    def co_chair(self, member: str = "ID") -> dict[str, str]:
        return self.auth(member, (Role.co_chair,), subject=f"co-chair-of-{member}")

    def ops(self) -> dict[str, str]:
        return self.auth("RSO", (Role.ops,), subject="rso-operations")

    @property
    def sessions(self) -> Any:
        return self.app.state.runtime.sessions

    async def create(self, member: str = "MY", **overrides: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/activities", json=activity_body(**overrides), headers=self.auth(member)
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def get(self, activity_id: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.client.get(
            f"/v1/activities/{activity_id}", headers=headers or self.admin()
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
            headers={**(headers or self.auth(member)), "If-Match": f'"v{version}"'},
        )

    async def audit_rows(self, resource_id: str | None = None) -> list[AuditRecord]:
        async with self.sessions() as session:
            query = select(AuditRecord).order_by(col(AuditRecord.id))
            if resource_id is not None:
                query = query.where(AuditRecord.resource_id == resource_id)
            return list((await session.exec(query)).all())

    async def events(
        self, stream: Stream, *, subject: str, expected: int, timeout: float = 20.0
    ) -> list[CloudEvent]:
        """The events published about one aggregate, read back from the broker.

        Reads until `expected` are there, then a little longer, so that an
        unexpected extra event is seen too.
        """
        topic = STREAM_TOPICS[stream]
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            enable_auto_commit=False,
            fetch_max_wait_ms=10,
        )
        await consumer.start()
        found: list[CloudEvent] = []
        try:
            name = topic.qualified(self.settings.kafka_topic_prefix)
            partitions = [TopicPartition(name, p) for p in range(topic.partitions)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            deadline = time.monotonic() + timeout
            settled_at: float | None = None
            while time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=100)
                for records in batches.values():
                    for record in records:
                        event = CloudEvent.from_kafka(record.headers, record.value)
                        if event.subject == subject:
                            found.append(event)
                if len(found) >= expected:
                    settled_at = settled_at or time.monotonic()
                    if time.monotonic() - settled_at > 0.4:
                        break
        finally:
            await consumer.stop()
        return found


async def activities_settings(
    *, data_dir: Path, kafka_bootstrap: str, databases: DatabaseFactory, **overrides: Any
) -> ActivitiesSettings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "kafka_bootstrap_servers": kafka_bootstrap,
        "kafka_topic_prefix": f"t{uuid4().hex[:10]}.",
        **FAST_KAFKA,
    }
    values.update(overrides)
    if "database_url" not in values:
        values["database_url"] = await databases.create("activities")
    return ActivitiesSettings(**values)


@contextlib.asynccontextmanager
async def started(settings: ActivitiesSettings) -> AsyncIterator[Service]:
    app = create_app(settings)
    async with running(app) as client:
        yield Service(app=app, client=client, settings=settings)


@contextlib.asynccontextmanager
async def module_service(
    kafka_bootstrap: str, directory: Path, **overrides: Any
) -> AsyncIterator[Service]:
    """One service for a whole test module, on its own database and topics."""
    databases = DatabaseFactory(directory)
    try:
        settings = await activities_settings(
            data_dir=directory, kafka_bootstrap=kafka_bootstrap, databases=databases, **overrides
        )
        async with started(settings) as service:
            yield service
    finally:
        await databases.drop_all()
