"""The notifications service under test, started on real parts, and the events fed to it."""

# The fixtures here and in `notification_receivers` are registered by `conftest.py`; the
# test modules import the helpers under these unique module names, so other packages'
# `conftest` modules can never shadow them.

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from bali_common.db import as_utc, utcnow
from bali_common.events import REGISTRY, STREAM_TOPICS, CloudEvent, EventPayload, Stream
from bali_common.events.activities import ActivityCreated, ActivitySummary, ActivityType
from bali_common.events.alerts import (
    AlertRaised,
    AlertResolved,
    AlertStatus,
    AlertSummary,
    AlertWithdrawn,
    Certainty,
    Sensitivity,
    Severity,
    SituationType,
    Urgency,
)
from bali_common.events.members import (
    FocalPointData,
    FocalPointRole,
    MemberKind,
    MemberRegistered,
    MemberUpdated,
)
from bali_common.events.shared import Actor
from bali_common.messaging.outbox import OutboxMessage
from bali_common.runtime import ServiceRuntime, runtime_of
from bali_devkit.testing.plugin import (
    TokenBook,
    eventually,
    read_topic,
    running,
    settings_factory_for,
)
from bali_notifications import secrets_at_rest
from bali_notifications.app import channel_senders, create_app
from bali_notifications.deliveries import digests
from bali_notifications.deliveries.dispatcher import Dispatcher
from bali_notifications.deliveries.models import Delivery
from bali_notifications.directory import MemberEntry
from bali_notifications.metrics import NotificationMetrics
from bali_notifications.parts import NotificationParts
from bali_notifications.planning import AlertState
from bali_notifications.settings import NotificationsSettings
from bali_notifications.ssrf import Resolver
from fastapi import FastAPI
from notification_receivers import Endpoint, MailSink, WebhookReceiver
from prometheus_client import CollectorRegistry
from sqlmodel import col, func, select


@dataclass
class Harness:
    app: FastAPI
    client: httpx.AsyncClient
    settings: NotificationsSettings
    producer: AIOKafkaProducer
    tokens: TokenBook

    @property
    def runtime(self) -> ServiceRuntime:
        return runtime_of(self.app)

    @property
    def parts(self) -> NotificationParts:
        return self.runtime.parts_as(NotificationParts)

    async def publish(
        self, payload: EventPayload, *, subject: str, event: CloudEvent | None = None
    ) -> CloudEvent:
        """A real CloudEvent on the real topic, as the owning service's relay would send it."""
        event = event or CloudEvent.of(payload, source="/bali/test-upstream", subject=subject)
        stream = REGISTRY.get(event.type, event.version).stream
        await self.producer.send_and_wait(
            STREAM_TOPICS[stream].qualified(self.settings.kafka_topic_prefix),
            value=event.kafka_value(),
            key=event.kafka_key(),
            headers=event.kafka_headers(),
        )
        return event

    async def deliveries(self, **where: Any) -> list[Delivery]:
        async with self.runtime.sessions() as session:
            query = select(Delivery)
            for name, value in where.items():
                query = query.where(getattr(Delivery, name) == value)
            return list((await session.exec(query.order_by(col(Delivery.created_at)))).all())

    async def planned(self, event: CloudEvent, count: int) -> list[Delivery]:
        """Wait until the consumer planned `count` deliveries for the event."""

        async def ready() -> bool:
            return len(await self.deliveries(source_event_id=str(event.id))) >= count

        await eventually(ready)
        return await self.deliveries(source_event_id=str(event.id))

    async def dispatch(self, now: datetime | None = None) -> int:
        return await self.parts.dispatcher.dispatch_due(now=now or utcnow())

    async def bundle_digests(self, now: datetime) -> int:
        return await digests.bundle(sessions=self.runtime.sessions, hub=self.parts.hub, now=now)

    @contextlib.asynccontextmanager
    async def dispatcher_with(self, **overrides: Any) -> AsyncIterator[Dispatcher]:
        """The service's dispatcher on the same database, under other settings (say another
        SMTP relay): settings are read when the channels are built, as at start-up."""
        settings = NotificationsSettings.model_validate(self.settings.model_dump() | overrides)
        dispatcher = Dispatcher(
            settings=settings,
            sessions=self.runtime.sessions,
            hub=self.parts.hub,
            # Its own registry: the running app's already holds these metric names.
            metrics=NotificationMetrics(CollectorRegistry()),
            senders=channel_senders(
                settings=settings,
                guard=self.parts.guard,
                hub=self.parts.hub,
                box=secrets_at_rest.box_for(settings),
            ),
        )
        try:
            yield dispatcher
        finally:
            await dispatcher.aclose()

    async def member(self, member_id: str) -> MemberEntry | None:
        async with self.runtime.sessions() as session:
            return await session.get(MemberEntry, member_id)

    async def members_known(self, *member_ids: str, version: int = 1) -> None:
        """Wait until the directory holds these members at `version` or later."""

        async def known() -> bool:
            for member_id in member_ids:
                entry = await self.member(member_id)
                if entry is None or entry.version < version:
                    return False
            return True

        await eventually(known)

    async def add_focal_points(self, member_id: str, *points: FocalPointData) -> CloudEvent:
        """member.updated with the member's current state plus `points`, once applied."""
        entry = await self.member(member_id)
        assert entry is not None
        current = [FocalPointData.model_validate(point) for point in entry.focal_points]
        return await self._update_focal_points(entry, [*current, *points])

    async def drop_focal_points(self, member_id: str, *focal_point_ids: str) -> CloudEvent:
        """member.updated without the named focal points, once applied."""
        entry = await self.member(member_id)
        assert entry is not None
        current = [FocalPointData.model_validate(point) for point in entry.focal_points]
        kept = [point for point in current if point.focal_point_id not in focal_point_ids]
        return await self._update_focal_points(entry, kept)

    async def _update_focal_points(
        self, entry: MemberEntry, focal_points: list[FocalPointData]
    ) -> CloudEvent:
        snapshot = MemberUpdated(
            member_id=entry.member_id,
            name=entry.name,
            kind=MemberKind(entry.kind),
            is_co_chair=entry.is_co_chair,
            active=entry.active,
            focal_points=focal_points,
            version=entry.version + 1,
        )
        event = await self.publish(snapshot, subject=entry.member_id)
        await self.members_known(entry.member_id, version=snapshot.version)
        return event

    async def alert_state(self, alert_id: str) -> AlertState | None:
        async with self.runtime.sessions() as session:
            return await session.get(AlertState, alert_id)

    async def register_members(self, members: Sequence[MemberRegistered]) -> None:
        for member in members:
            await self.publish(member, subject=member.member_id)

        async def projected() -> bool:
            async with self.runtime.sessions() as session:
                count = await session.exec(select(func.count()).select_from(MemberEntry))
                return int(count.one()) >= len(members)

        await eventually(projected)

    async def relayed_notifications(self) -> tuple[int, list[CloudEvent]]:
        """How many notification.* events were staged, and those on the topic once all relayed."""

        async def relayed() -> bool:
            async with self.runtime.sessions() as session:
                pending = await session.exec(
                    select(OutboxMessage.id).where(col(OutboxMessage.sent_at).is_(None))
                )
                return pending.first() is None

        await eventually(relayed)
        async with self.runtime.sessions() as session:
            staged = len((await session.exec(select(OutboxMessage.id))).all())
        topic = STREAM_TOPICS[Stream.notifications]
        return staged, await read_topic(self.settings, topic, expected=staged)

    async def metric(self, name: str) -> float:
        text = (await self.client.get("/metrics")).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name) and not line.startswith("#")
        )


#: The retry schedule of the modules that drive the clock through retries.
RETRY_SCHEDULE = [5.0, 300.0, 1_800.0, 7_200.0, 18_000.0, 36_000.0, 36_000.0]
RETRY_JITTER = 0.2


async def reload(harness: Harness, delivery: Delivery) -> Delivery:
    [fresh] = await harness.deliveries(id=delivery.id)
    return fresh


def due(delivery: Delivery) -> datetime:
    assert delivery.next_attempt_at is not None
    return as_utc(delivery.next_attempt_at)


def assert_delay_follows_schedule(previous: datetime, following: datetime, step: int) -> None:
    delay = (following - previous).total_seconds()
    low = RETRY_SCHEDULE[step] * (1 - RETRY_JITTER)
    high = RETRY_SCHEDULE[step] * (1 + RETRY_JITTER)
    assert low <= delay <= high, f"retry {step + 1}: {delay}s not within [{low}, {high}]"


async def subscribe(
    harness: Harness,
    member: str,
    receiver: WebhookReceiver | None = None,
    *,
    headers: dict[str, str] | None = None,
    **body: Any,
) -> tuple[str, Endpoint | None]:
    """A subscription through the API, by a user of `member` with the plain member role
    unless `headers` say otherwise; webhooks get their own receiver endpoint and secret."""
    endpoint = receiver.endpoint() if receiver is not None else None
    document = {"name": f"{member} subscription", "channel": "webhook", **body}
    if endpoint is not None:
        document["url"] = endpoint.url
    response = await harness.client.post(
        "/v1/subscriptions", json=document, headers=headers or harness.tokens(member)
    )
    assert response.status_code == 201, response.text
    created = response.json()
    if endpoint is not None:
        endpoint.secrets.append(created["secret"])
    return created["id"], endpoint


async def unsubscribe(harness: Harness, member: str, *subscription_ids: str) -> None:
    for subscription_id in subscription_ids:
        response = await harness.client.delete(
            f"/v1/subscriptions/{subscription_id}", headers=harness.tokens(member)
        )
        assert response.status_code == 204


@dataclass(frozen=True)
class ServiceStarter:
    """Starts the app against the session's broker, SMTP server and webhook receiver."""

    tmp_path_factory: pytest.TempPathFactory
    kafka_bootstrap: str
    smtp_server: MailSink
    webhook_receiver: WebhookReceiver

    @contextlib.asynccontextmanager
    async def started(
        self,
        name: str,
        *,
        also_allow: Sequence[str] = (),
        resolver: Resolver | None = None,
        members: Sequence[MemberRegistered] | None = None,
        **overrides: Any,
    ) -> AsyncIterator[Harness]:
        """One app per test module, the member directory registered: consumers join once.

        `members` replaces the `standard_directory()`; empty, the app starts as a fresh system.
        """
        values: dict[str, Any] = {
            "smtp_port": self.smtp_server.port,
            "webhook_allow_list": [self.webhook_receiver.origin, *also_allow],
            "dispatch_in_background": False,
        }
        data_dir = self.tmp_path_factory.mktemp(name)
        async with settings_factory_for(self.kafka_bootstrap, data_dir) as make_settings:
            settings = await make_settings(NotificationsSettings, **(values | overrides))
            app = create_app(settings, resolver=resolver)
            producer = AIOKafkaProducer(bootstrap_servers=self.kafka_bootstrap, acks="all")
            await producer.start()
            try:
                async with running(app) as client:
                    harness = Harness(app, client, settings, producer, TokenBook(settings))
                    await harness.register_members(
                        standard_directory() if members is None else members
                    )
                    yield harness
            finally:
                await producer.stop()


@pytest.fixture(scope="session")
def notifications(
    tmp_path_factory: pytest.TempPathFactory,
    kafka_bootstrap: str,
    smtp_server: MailSink,
    webhook_receiver: WebhookReceiver,
) -> ServiceStarter:
    return ServiceStarter(tmp_path_factory, kafka_bootstrap, smtp_server, webhook_receiver)


# --- event factories ------------------------------------------------------------------------


def focal_point(
    member: str, name: str, role: FocalPointRole = FocalPointRole.focal_point, active: bool = True
) -> FocalPointData:
    return FocalPointData(
        focal_point_id=f"{member}-{name}",
        name=name.title(),
        email=f"{name}@{member.lower()}.example.org",
        role=role,
        active=active,
    )


def member(
    member_id: str,
    name: str,
    *focal_points: FocalPointData,
    kind: MemberKind = MemberKind.member_state,
    co_chair: bool = False,
) -> MemberRegistered:
    return MemberRegistered(
        member_id=member_id,
        name=name,
        kind=kind,
        is_co_chair=co_chair,
        focal_points=list(focal_points),
        version=1,
    )


def standard_directory() -> list[MemberRegistered]:
    """Two co-chairs (AU with two focal points, ID with one) and three other members."""
    senior = FocalPointRole.senior_official
    return [
        member(
            "AU",
            "Australia",
            focal_point("AU", "ana"),
            focal_point("AU", "ben"),
            focal_point("AU", "senior", senior),
            focal_point("AU", "retired", active=False),
            co_chair=True,
        ),
        member(
            "ID",
            "Indonesia",
            focal_point("ID", "dewi"),
            focal_point("ID", "senior", senior),
            co_chair=True,
        ),
        member("PH", "Philippines", focal_point("PH", "paolo")),
        member("MY", "Malaysia", focal_point("MY", "mei")),
        member(
            "IOM",
            "International Organization for Migration",
            focal_point("IOM", "ines"),
            kind=MemberKind.international_organisation,
        ),
    ]


def alert_raised(
    *,
    severity: Severity = Severity.extreme,
    raised_by: str = "PH",
    affected: Sequence[str] = ("MY",),
    sensitivity: Sensitivity = Sensitivity.public,
    title: str | None = None,
) -> AlertRaised:
    alert_id = f"alert-{uuid4().hex[:12]}"
    now = datetime.now(UTC)
    return AlertRaised(
        alert=AlertSummary(
            alert_id=alert_id,
            version=1,
            status=AlertStatus.raised,
            situation_type=SituationType.maritime_distress,
            title=title or f"Boat in distress {alert_id}",
            severity=severity,
            urgency=Urgency.immediate,
            certainty=Certainty.observed,
            sensitivity=sensitivity,
            raised_by_member=raised_by,
            affected_members=list(affected),
            location_names=["Timor Sea"],
            people_affected=120,
            raised_at=now,
        ),
        actor=Actor(subject=f"user-of-{raised_by}", member_id=raised_by),
        occurred_at=now,
        description="An overloaded vessel is taking on water.",
        requested_actions=["Search and rescue coordination"],
    )


def alert_closed(
    raised: AlertRaised, *, status: AlertStatus = AlertStatus.resolved, version: int = 2
) -> AlertResolved | AlertWithdrawn:
    """The raised alert's next step: resolved (by a co-chair) or withdrawn (by its raiser)."""
    now = datetime.now(UTC)
    alert = raised.alert.model_copy(
        update={"version": version, "status": status, "resolved_at": now}
    )
    if status is AlertStatus.resolved:
        return AlertResolved(
            alert=alert,
            actor=Actor(subject="co-chair-of-ID", member_id="ID"),
            occurred_at=now,
            summary="All passengers were brought ashore.",
        )
    assert status is AlertStatus.withdrawn
    return AlertWithdrawn(
        alert=alert, actor=raised.actor, occurred_at=now, reason="Raised in error."
    )


def activity_created(
    *, lead: str = "IOM", items: Sequence[int] = (5,), areas: Sequence[int] = (2,)
) -> ActivityCreated:
    activity_id = f"act-{uuid4().hex[:12]}"
    return ActivityCreated(
        activity=ActivitySummary(
            activity_id=activity_id,
            version=1,
            title=f"Workshop {activity_id}",
            item_numbers=list(items),
            area_numbers=list(areas),
            type=ActivityType.workshop,
            status="planned",  # type: ignore[arg-type]
            lead_member=lead,
        ),
        actor=Actor(subject=f"user-of-{lead}", member_id=lead),
        occurred_at=datetime.now(UTC),
    )
