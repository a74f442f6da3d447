"""The platform the alert visibility matrix runs on: both services, real broker, mail, webhooks.

Both services on the embedded broker, the member directory published as the activities
service would, subscriptions made through the API, three alerts raised through the
consultation API and carried to notifications by the real outbox and topics, a real SMTP
server and a real webhook receiver, and every caller's live inbox stream open meanwhile.
Raised by MY: `restricted` affects TH, `elsewhere` affects PH only (TH is not involved),
`public` affects TH. AU and ID are the co-chairs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from aiosmtpd.controller import Controller
from bali_common.auth import Role
from bali_common.events import STREAM_TOPICS, CloudEvent, Stream
from bali_common.events.members import FocalPointData, MemberKind, MemberRegistered
from bali_consultation.alerts.schemas import ALERT_EXAMPLE
from bali_consultation.app import create_app as consultation_app
from bali_consultation.directory import DirectoryMember
from bali_consultation.settings import ConsultationSettings
from bali_devkit.broker import free_port
from bali_devkit.testing.plugin import TokenBook, eventually, running, serving, settings_factory_for
from bali_notifications.app import create_app as notifications_app
from bali_notifications.deliveries.models import Delivery
from bali_notifications.directory import MemberEntry
from bali_notifications.settings import NotificationsSettings
from sqlmodel import select
from standardwebhooks import Webhook

ALERTS = ("restricted", "elsewhere", "public")

#: The callers: member, roles; each a person of their own.
CALLERS: dict[str, tuple[str | None, tuple[Role, ...]]] = {
    "member AU": ("AU", (Role.member,)),
    "co_chair AU": ("AU", (Role.co_chair,)),
    "co_chair TH": ("TH", (Role.co_chair,)),
    "member TH": ("TH", (Role.member,)),
    "member MY": ("MY", (Role.member,)),
    "member NZ": ("NZ", (Role.member,)),
    "ops RSO": ("RSO", (Role.ops,)),
    "admin": (None, (Role.admin,)),
}


def focal(member: str) -> str:
    return f"duty@{member.lower()}.example.org"


def directory() -> list[MemberRegistered]:
    """AU and ID co-chairs; TH, MY, NZ, PH and the RSO members; one focal point each."""

    def entry(
        member: str, co_chair: bool = False, kind: MemberKind = MemberKind.member_state
    ) -> MemberRegistered:
        point = FocalPointData(
            focal_point_id=f"{member}-1", name=f"Duty {member}", email=focal(member)
        )
        return MemberRegistered(
            member_id=member,
            name=f"Member {member}",
            kind=kind,
            is_co_chair=co_chair,
            focal_points=[point],
            version=1,
        )

    return [
        entry("AU", co_chair=True),
        entry("ID", co_chair=True),
        *(entry(m) for m in ("TH", "MY", "NZ", "PH")),
        entry("RSO", kind=MemberKind.regional_support_office),
    ]


# --- the real parts outside the services ------------------------------------------------------


class MailSink:
    """aiosmtpd handler keeping each message as the standard library parses it."""

    def __init__(self) -> None:
        self.port = free_port()
        self._lock = threading.Lock()
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.messages.append(message)
        return "250 OK"

    def recipients(self, alert_id: str) -> set[str]:
        with self._lock:
            return {str(m["To"]) for m in self.messages if m["X-Bali-Alert-Id"] == alert_id}


@dataclass
class Receiver:
    """Webhook endpoints, one per subscription, each verifying its Standard Webhooks secret."""

    port: int = field(default_factory=free_port)
    secrets: dict[str, str] = field(default_factory=dict)
    received: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        name = scope["path"].strip("/")
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        payload = Webhook(self.secrets[name]).verify(body, headers)
        self.received.setdefault(name, []).append(payload)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def alerts(self, name: str) -> set[str]:
        return {hook["data"]["alert"]["alert_id"] for hook in self.received.get(name, [])}


@contextlib.contextmanager
def smtp_server() -> Iterator[MailSink]:
    sink = MailSink()
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


# --- the platform ------------------------------------------------------------------------------


@dataclass
class Platform:
    consultation: httpx.AsyncClient
    notifications: httpx.AsyncClient
    apps: dict[str, Any]
    settings: ConsultationSettings
    tokens: TokenBook
    mail: MailSink
    hooks: Receiver
    stream_url: str
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: What each caller's live stream carried while the alerts were delivered.
    live: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def headers(self, caller: str) -> dict[str, str]:
        member, roles = CALLERS[caller]
        return self.tokens(member, roles, subject=self.subject(caller))

    @staticmethod
    def subject(caller: str) -> str:
        return f"person-{caller.replace(' ', '-')}"

    def id_of(self, name: str) -> str:
        return str(self.alerts[name]["id"])

    def names(self, alert_ids: set[str | None]) -> set[str]:
        return {name for name in ALERTS if self.id_of(name) in alert_ids}

    def content_of(self, names: set[str]) -> list[str]:
        """The titles and descriptions of these alerts: text that must not be shown."""
        return [self.alerts[n][part] for n in names for part in ("title", "description")]

    def sessions(self, service: str) -> Any:
        return self.apps[service].state.runtime.sessions

    async def deliveries(self) -> list[Delivery]:
        async with self.sessions("notifications")() as session:
            return list((await session.exec(select(Delivery))).all())


#: Subscriptions: name -> (who makes it, channel); webhooks go to the receiver under `name`.
SUBSCRIPTIONS = {
    "au-by-co-chair": ("co_chair AU", "webhook"),
    "au-by-member": ("member AU", "webhook"),
    "th-by-co-chair": ("co_chair TH", "webhook"),
    "my-by-member": ("member MY", "webhook"),
    "nz-by-member": ("member NZ", "webhook"),
    "admin-own": ("admin", "webhook"),
    "au-mail-by-member": ("member AU", "email"),
    "au-mail-by-co-chair": ("co_chair AU", "email"),
    "my-inbox": ("member MY", "inbox"),
    "nz-inbox": ("member NZ", "inbox"),
    "admin-inbox": ("admin", "inbox"),
}


def mail_address(subscription: str) -> str:
    return f"{subscription}@subscribers.example.org"


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def platform(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Platform]:
    data_dir: Path = tmp_path_factory.mktemp("visibility-matrix")
    hooks = Receiver()
    with smtp_server() as mail:
        async with settings_factory_for(kafka_bootstrap, data_dir) as make_settings:
            c_settings = await make_settings(ConsultationSettings, escalation_loop_enabled=False)
            n_settings = await make_settings(
                NotificationsSettings,
                smtp_port=mail.port,
                webhook_allow_list=[f"127.0.0.1:{hooks.port}"],
                dispatch_in_background=False,
                inbox_stream_heartbeat_s=0.2,
            )
            apps = {
                "consultation": consultation_app(c_settings),
                "notifications": notifications_app(n_settings),
            }
            stream_port = free_port()
            async with (
                running(apps["consultation"]) as consultation,
                running(apps["notifications"]) as notifications,
                serving(hooks, hooks.port),
                serving(apps["notifications"], stream_port),
            ):
                platform = Platform(
                    consultation,
                    notifications,
                    apps,
                    c_settings,
                    TokenBook(c_settings),
                    mail,
                    hooks,
                    f"http://127.0.0.1:{stream_port}",
                )
                await _publish_directory(platform)
                await _subscribe(platform)
                async with _live_streams(platform):
                    await _raise_and_deliver(platform)
                yield platform


async def _publish_directory(platform: Platform) -> None:
    """As the activities service publishes it; both services project it from the topic."""
    settings = platform.settings
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        topic = STREAM_TOPICS[Stream.members].qualified(settings.kafka_topic_prefix)
        for snapshot in directory():
            event = CloudEvent.of(snapshot, source="/bali/activities", subject=snapshot.member_id)
            await producer.send_and_wait(
                topic, event.kafka_value(), key=event.kafka_key(), headers=event.kafka_headers()
            )
    finally:
        await producer.stop()

    async def projected() -> bool:
        for service, table in (("consultation", DirectoryMember), ("notifications", MemberEntry)):
            async with platform.sessions(service)() as session:
                if len((await session.exec(select(table))).all()) < len(directory()):
                    return False
        return True

    await eventually(projected)


async def _subscribe(platform: Platform) -> None:
    for name, (caller, channel) in SUBSCRIPTIONS.items():
        body: dict[str, Any] = {"name": name, "channel": channel, "event_types": ["alert.raised"]}
        if channel == "webhook":
            body["url"] = platform.hooks.url(name)
        elif channel == "email":
            body["email"] = mail_address(name)
        response = await platform.notifications.post(
            "/v1/subscriptions", json=body, headers=platform.headers(caller)
        )
        assert response.status_code == 201, response.text
        if channel == "webhook":
            platform.hooks.secrets[name] = response.json()["secret"]


async def _raise_and_deliver(platform: Platform) -> None:
    """Raised through the API; the outbox, the topic and the consumer carry them over."""
    affected = {"restricted": ["TH"], "elsewhere": ["PH"], "public": ["TH"]}
    for name in ALERTS:
        body = {
            **ALERT_EXAMPLE,
            "title": f"{name.title()} alert {uuid4().hex[:8]}",
            "description": f"Details of the {name} situation {uuid4().hex}",
            "affected_members": affected[name],
            "sensitivity": "public" if name == "public" else "restricted",
            "dedup_key": f"matrix-{name}",
        }
        raised = await platform.consultation.post(
            "/v1/alerts", json=body, headers=platform.headers("member MY")
        )
        assert raised.status_code == 201, raised.text
        platform.alerts[name] = raised.json()
    wanted = {platform.id_of(name) for name in ALERTS}

    async def planned() -> bool:
        return wanted <= {d.alert_id for d in await platform.deliveries()}

    await eventually(planned)
    runtime = platform.apps["notifications"].state.runtime
    await runtime.parts.dispatcher.dispatch_due(now=datetime.now(UTC) + timedelta(seconds=1))


@contextlib.asynccontextmanager
async def _live_streams(platform: Platform) -> AsyncIterator[None]:
    """Every caller's inbox stream, open while the alerts are raised and delivered, read
    until it has polled twice after the last delivery."""
    streams = {caller: InboxStream(platform.headers(caller)) for caller in CALLERS}
    async with httpx.AsyncClient(base_url=platform.stream_url, timeout=60) as http:
        readers = [asyncio.create_task(stream.read(http)) for stream in streams.values()]
        await eventually(_all_open(streams.values()))
        try:
            yield
            delivered_at = time.monotonic()
            await eventually(_all_polled_since(streams.values(), delivered_at))
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
    platform.live = {caller: stream.items for caller, stream in streams.items()}


@dataclass
class InboxStream:
    """One reader's inbox stream: the items it carried and when it kept alive."""

    headers: dict[str, str]
    items: list[dict[str, Any]] = field(default_factory=list)
    keep_alives: list[float] = field(default_factory=list)

    async def read(self, http: httpx.AsyncClient) -> None:
        async with http.stream("GET", "/v1/inbox/stream", headers=self.headers) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    self.items.append(json.loads(line.removeprefix("data:")))
                elif line.startswith(": keep-alive"):
                    self.keep_alives.append(time.monotonic())


def _all_open(streams: Iterable[InboxStream]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return all(stream.keep_alives for stream in streams)

    return check


def _all_polled_since(
    streams: Iterable[InboxStream], since: float
) -> Callable[[], Awaitable[bool]]:
    """Polled twice after `since`: whatever was stored before has been sent."""

    async def check() -> bool:
        return all(len([t for t in s.keep_alives if t > since]) >= 2 for s in streams)

    return check
