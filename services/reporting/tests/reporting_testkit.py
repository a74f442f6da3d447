"""Helpers of the reporting tests: events as the other services publish them, a running service."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from bali_common.catalogue import load_strategy
from bali_common.db import table_of
from bali_common.events import STREAM_TOPICS, CloudEvent, EventPayload
from bali_common.events.activities import (
    ActivityCreated,
    ActivityDeleted,
    ActivityParticipant,
    ActivityRestored,
    ActivityStatus,
    ActivityStatusChanged,
    ActivitySummary,
    ActivityType,
    ActivityUpdated,
    AgeGroupValue,
    OutputValue,
    ParticipantRole,
    SexDisaggregation,
)
from bali_common.events.alerts import (
    AlertAcknowledged,
    AlertConsultationConvened,
    AlertEvent,
    AlertOutreachLogged,
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
from bali_common.events.members import MemberKind, MemberRegistered, MemberUpdated
from bali_common.events.notifications import (
    Channel,
    NotificationDelivered,
    NotificationExhausted,
    NotificationFailed,
    NotificationSent,
)
from bali_common.events.shared import Actor
from bali_common.messaging.inbox import InboxEntry
from bali_devkit.testing.plugin import TokenBook, eventually, running
from bali_reporting.app import create_app
from bali_reporting.projections import PROJECTION_MODELS
from bali_reporting.settings import ReportingSettings
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

NOW = datetime(2025, 11, 28, 3, 0, tzinfo=UTC)
ACTOR = Actor(subject="test-user", member_id="TH")


def activity(
    activity_id: str,
    *,
    version: int = 1,
    items: Sequence[int] = (12,),
    status: ActivityStatus = ActivityStatus.completed,
    kind: ActivityType = ActivityType.workshop,
    lead: str = "TH",
    participants: Sequence[tuple[str, ParticipantRole]] = (("IOM", ParticipantRole.participant),),
    start: date | None = date(2025, 3, 10),
    end: date | None = date(2025, 3, 11),
    outputs: Sequence[OutputValue] = (),
    related_alert_id: str | None = None,
    deleted: bool = False,
    title: str | None = None,
) -> ActivitySummary:
    strategy = load_strategy()
    return ActivitySummary(
        activity_id=activity_id,
        version=version,
        title=title or f"Activity {activity_id}",
        item_numbers=list(items),
        area_numbers=sorted({strategy.item(n).area_number for n in items}),
        type=kind,
        status=status,
        lead_member=lead,
        participating_members=[m for m, _ in participants],
        participants=[
            ActivityParticipant(member_id=lead, role=ParticipantRole.lead),
            *(ActivityParticipant(member_id=m, role=r) for m, r in participants),
        ],
        planned_start=start,
        planned_end=end,
        outputs=list(outputs),
        related_alert_id=related_alert_id,
        deleted=deleted,
    )


def output(
    indicator: str,
    value: float,
    *,
    female: float | None = None,
    male: float | None = None,
    ages: Sequence[tuple[str, float]] = (),
    unit: str | None = None,
) -> OutputValue:
    sex = (
        SexDisaggregation(female=female, male=male)
        if female is not None or male is not None
        else None
    )
    return OutputValue(
        indicator=indicator,
        value=value,
        unit=unit,
        by_sex=sex,
        by_age=[AgeGroupValue(age_group=g, value=v) for g, v in ages],
    )


_ACTIVITY_EVENTS: dict[str, type[Any]] = {
    "created": ActivityCreated,
    "updated": ActivityUpdated,
    "status_changed": ActivityStatusChanged,
    "deleted": ActivityDeleted,
    "restored": ActivityRestored,
}


def activity_event(
    summary: ActivitySummary, kind: str = "created", *, at: datetime = NOW
) -> CloudEvent:
    model = _ACTIVITY_EVENTS[kind]
    extra: dict[str, Any] = {"previous_status": "planned"} if kind == "status_changed" else {}
    payload = model(activity=summary, actor=ACTOR, occurred_at=at, **extra)
    return CloudEvent.of(payload, source="/bali/activities", subject=summary.activity_id)


def alert(
    alert_id: str,
    *,
    version: int = 1,
    status: AlertStatus = AlertStatus.raised,
    severity: Severity = Severity.extreme,
    sensitivity: Sensitivity = Sensitivity.public,
    raised_by: str = "TH",
    affected: Sequence[str] = ("ID",),
    raised_at: datetime = NOW,
    acknowledged_after: timedelta | None = None,
    convened_after: timedelta | None = None,
    resolved_after: timedelta | None = None,
    title: str | None = None,
) -> AlertSummary:
    def later(delta: timedelta | None) -> datetime | None:
        return raised_at + delta if delta is not None else None

    return AlertSummary(
        alert_id=alert_id,
        version=version,
        status=status,
        situation_type=SituationType.maritime_distress,
        title=title or f"Alert {alert_id}",
        severity=severity,
        urgency=Urgency.immediate,
        certainty=Certainty.observed,
        sensitivity=sensitivity,
        raised_by_member=raised_by,
        affected_members=list(affected),
        raised_at=raised_at,
        acknowledged_at=later(acknowledged_after),
        convened_at=later(convened_after),
        resolved_at=later(resolved_after),
    )


_ALERT_STEPS: dict[AlertStatus, tuple[type[AlertEvent], dict[str, Any]]] = {
    AlertStatus.raised: (AlertRaised, {"description": "Boats adrift"}),
    AlertStatus.acknowledged: (AlertAcknowledged, {}),
    AlertStatus.consultation_convened: (
        AlertConsultationConvened,
        {"convened_for": NOW, "participants": ["AU", "ID"]},
    ),
    AlertStatus.outreach_under_way: (
        AlertOutreachLogged,
        {"reached_by": "AU", "reached": "Flag state", "outcome": "Agreed"},
    ),
    AlertStatus.resolved: (AlertResolved, {"summary": "All safe"}),
    AlertStatus.withdrawn: (AlertWithdrawn, {}),
}


def alert_event(summary: AlertSummary, *, at: datetime | None = None) -> CloudEvent:
    model, extra = _ALERT_STEPS.get(summary.status, _ALERT_STEPS[AlertStatus.acknowledged])
    actor = Actor(subject="co-chair", member_id="ID")
    payload = model(alert=summary, actor=actor, occurred_at=at or summary.raised_at, **extra)
    return CloudEvent.of(payload, source="/bali/consultation", subject=summary.alert_id)


def member_event(
    member_id: str, *, version: int = 1, name: str | None = None, co_chair: bool = False
) -> CloudEvent:
    model = MemberRegistered if version == 1 else MemberUpdated
    payload = model(
        member_id=member_id,
        name=name or f"Member {member_id}",
        kind=MemberKind.member_state,
        is_co_chair=co_chair,
        version=version,
    )
    return CloudEvent.of(payload, source="/bali/activities", subject=member_id)


_DELIVERY_EVENTS: dict[str, type[Any]] = {
    "sent": NotificationSent,
    "delivered": NotificationDelivered,
    "failed": NotificationFailed,
    "exhausted": NotificationExhausted,
}


def delivery_event(
    delivery_id: str,
    kind: str,
    *,
    attempt: int = 1,
    at: datetime = NOW,
    channel: Channel = Channel.email,
    alert_id: str | None = None,
    member_id: str | None = "ID",
    warning: bool = False,
    error: str = "503 from receiver",
) -> CloudEvent:
    extra: dict[str, Any] = {}
    if kind in ("failed", "exhausted"):
        extra = {"error": error, "operator_warning": warning}
    payload = _DELIVERY_EVENTS[kind](
        delivery_id=delivery_id,
        source_event_id="5b0f7a2e-8a9f-4b7e-9d52-1c8e0e4d2f10",
        source_event_type="alert.raised" if alert_id else "activity.created",
        channel=channel,
        recipient="focal.point@example.org",
        member_id=member_id,
        alert_id=alert_id,
        severity="Extreme" if alert_id else None,
        attempt=attempt,
        occurred_at=at,
        **extra,
    )
    return CloudEvent.of(payload, source="/bali/notifications", subject=delivery_id)


async def publish(settings: ReportingSettings, events: Iterable[CloudEvent]) -> int:
    """Publish to the topics of the events' streams, as the services' relays do."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=5)
    await producer.start()
    sent = 0
    try:
        for event in events:
            payload: EventPayload = event.payload()
            topic = STREAM_TOPICS[payload.stream].qualified(settings.kafka_topic_prefix)
            await producer.send(
                topic, event.kafka_value(), key=event.kafka_key(), headers=event.kafka_headers()
            )
            sent += 1
        await producer.flush()
    finally:
        await producer.stop()
    return sent


async def table_dump(
    engine: AsyncEngine, *, group: str = "reporting.projections"
) -> dict[str, list[tuple[Any, ...]]]:
    """Every projection table's rows, sorted, and the group's inbox (its event ids)."""
    dump: dict[str, list[tuple[Any, ...]]] = {}
    async with engine.connect() as connection:
        for model in PROJECTION_MODELS:
            table = table_of(model)
            rows = (await connection.execute(select(table))).all()
            dump[table.name] = sorted((tuple(row) for row in rows), key=repr)
        inbox = table_of(InboxEntry)
        ids = await connection.execute(
            select(inbox.c.event_id).where(inbox.c.consumer_group == group)
        )
        dump["inbox_entries"] = sorted((row[0],) for row in ids)
    return dump


@dataclass
class Reporting:
    app: FastAPI
    client: httpx.AsyncClient
    settings: ReportingSettings
    tokens: TokenBook

    @property
    def engine(self) -> AsyncEngine:
        return self.app.state.runtime.engine  # type: ignore[no-any-return]

    async def get(
        self, path: str, headers: dict[str, str] | None = None, **params: Any
    ) -> httpx.Response:
        return await self.client.get(path, params=params, headers=headers or self.tokens.ops())

    async def received(self) -> int:
        response = await self.client.get("/v1/pipeline/event-counts", headers=self.tokens.admin())
        return int(response.json()["total"])

    async def caught_up(self, total: int) -> None:
        """Wait until reporting has applied `total` distinct events. The bound only catches a
        hang: after a rebuild both replicas rejoin their group, slow on a busy machine."""

        async def done() -> bool:
            return await self.received() >= total

        await eventually(done, timeout=180)


@contextlib.asynccontextmanager
async def started(settings: ReportingSettings, *, clock: Any = None) -> AsyncIterator[Reporting]:
    app = create_app(settings, clock=clock or (lambda: NOW))
    async with running(app) as client:
        yield Reporting(app=app, client=client, settings=settings, tokens=TokenBook(settings))
