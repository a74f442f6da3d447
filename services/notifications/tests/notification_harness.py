"""Real parts for the notifications tests: an SMTP server, a webhook receiver, a canary, the app.

The fixtures are registered by `conftest.py`; the helpers are imported by the test modules
under this unique module name, so other packages' `conftest` modules can never shadow them.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
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
from aiosmtpd.smtp import AuthResult, LoginPassword
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
from bali_common.testing.plugin import (
    TokenBook,
    eventually,
    read_topic,
    running,
    serving,
    settings_factory_for,
)
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
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sqlmodel import col, func, select
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


# --- SMTP -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMail:
    sender: str
    recipients: list[str]
    message: EmailMessage
    tls_version: str | None = None  # the session's TLS protocol, None in clear text
    login: str | None = None  # who the session authenticated as, None without AUTH

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content())  # type: ignore[attr-defined]

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        assert part is not None
        return str(part.get_content())  # type: ignore[attr-defined]


class MailSink:
    """aiosmtpd handler: keeps every accepted message; refuses the addresses it is told to."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[ReceivedMail] = []
        self.refusals: dict[str, str] = {}
        self.port = 0

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        reply = self.refusals.get(address.lower())
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        # After STARTTLS, and from the first byte with implicit TLS, the transport is TLS.
        tls = server.transport.get_extra_info("ssl_object")
        login = session.login_data.decode() if session.authenticated else None
        with self._lock:
            self._messages.append(
                ReceivedMail(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    message,
                    tls_version=tls.version() if tls is not None else None,
                    login=login,
                )
            )
        return "250 Message accepted for delivery"

    def messages(
        self, *, header: str | None = None, value: str | None = None
    ) -> list[ReceivedMail]:
        with self._lock:
            found = list(self._messages)
        if header is not None:
            found = [m for m in found if m.message.get(header) == value]
        return found

    def for_alert(self, alert_id: str) -> list[ReceivedMail]:
        return self.messages(header="X-Bali-Alert-Id", value=alert_id)


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[MailSink]:
    """A real SMTP server (aiosmtpd) on a free loopback port, for the whole session."""
    sink = MailSink()
    sink.port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


class Accounts:
    """aiosmtpd authenticator: the relay's users and their passwords."""

    def __init__(self, passwords: Mapping[str, str]) -> None:
        self._passwords = dict(passwords)

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        return AuthResult(
            success=self._passwords.get(login) == password, handled=False, auth_data=auth_data
        )


def server_tls_context(files: TlsFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files.certificate, files.key)
    return context


@contextlib.contextmanager
def smtp_relay(
    files: TlsFiles, *, passwords: Mapping[str, str], implicit_tls: bool = False
) -> Iterator[MailSink]:
    """A real SMTP relay that takes mail only over TLS and only from a logged-in user.

    STARTTLS (587 style): aiosmtpd refuses every command but EHLO/STARTTLS/QUIT
    in clear text, offers AUTH only after STARTTLS, and refuses MAIL before AUTH.
    Implicit TLS (465 style): the listening socket is wrapped, so the session is
    TLS from the first byte; aiosmtpd's `auth_require_tls` only recognises a
    STARTTLS upgrade, so it is off there and the sink records each session's TLS.
    """
    sink = MailSink()
    sink.port = free_port()
    context = server_tls_context(files)
    tls: dict[str, Any] = (
        {"ssl_context": context, "auth_require_tls": False}
        if implicit_tls
        else {"tls_context": context, "require_starttls": True, "auth_require_tls": True}
    )
    controller = Controller(
        sink,
        hostname="127.0.0.1",
        port=sink.port,
        auth_required=True,
        authenticator=Accounts(passwords),
        **tls,
    )
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


# --- webhook receiver -----------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass(frozen=True)
class ReceivedHook:
    headers: dict[str, str]
    body: bytes
    verified: bool
    payload: Any

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Endpoint:
    path: str
    url: str
    secrets: list[str] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)
    default: Reply = field(default_factory=Reply)
    requests: list[ReceivedHook] = field(default_factory=list)

    def answer(self) -> Reply:
        return self.replies.pop(0) if self.replies else self.default

    @property
    def accepted_ids(self) -> set[str]:
        """What a receiver deduplicating on webhook-id would have acted on."""
        return {hook.webhook_id for hook in self.requests if hook.verified}


class WebhookReceiver:
    """A real HTTP server; each endpoint verifies Standard Webhooks signatures independently."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoints: dict[str, Endpoint] = {}

    @property
    def origin(self) -> str:
        return f"127.0.0.1:{self.port}"

    def endpoint(self, *, default: Reply | None = None, replies: Sequence[Reply] = ()) -> Endpoint:
        path = f"/hooks/{uuid4().hex}"
        endpoint = Endpoint(
            path=path,
            url=f"http://{self.origin}{path}",
            replies=list(replies),
            default=default or Reply(),
        )
        self.endpoints[path] = endpoint
        return endpoint

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        endpoint = self.endpoints.get(scope["path"])
        if endpoint is None:
            await _respond(send, Reply(404))
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        verified, payload = _verify(endpoint.secrets, body, headers)
        endpoint.requests.append(ReceivedHook(headers, body, verified, payload))
        reply = endpoint.answer() if verified else Reply(400)
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        await _respond(send, reply)


def _verify(secrets: list[str], body: bytes, headers: dict[str, str]) -> tuple[bool, Any]:
    for secret in secrets:
        try:
            return True, Webhook(secret).verify(body, headers)
        except WebhookVerificationError:
            continue
    return False, None


async def _respond(send: Any, reply: Reply) -> None:
    headers = [(k.lower().encode(), v.encode()) for k, v in reply.headers.items()]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    async with serving(receiver, receiver.port):
        yield receiver


# --- TLS ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    certificate: Path
    key: Path


def issue_tls(directory: Path, host: str = "localhost") -> TlsFiles:
    """A throw-away CA and a server certificate for `host` (no IP address in it)."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Notifications test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


# --- canary ---------------------------------------------------------------------------------


class Canary:
    """Listens on loopback (IPv4 and IPv6): any connection at all means an SSRF got through."""

    def __init__(self) -> None:
        self.port = free_port()
        self.connections = 0

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        with contextlib.suppress(Exception):
            await writer.drain()
        writer.close()


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def canary() -> AsyncIterator[Canary]:
    canary = Canary()
    servers = [await asyncio.start_server(canary._accept, "127.0.0.1", canary.port)]
    with contextlib.suppress(OSError):
        servers.append(await asyncio.start_server(canary._accept, "::1", canary.port))
    try:
        yield canary
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()


# --- the service under test -----------------------------------------------------------------


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
            senders=channel_senders(settings=settings, guard=self.parts.guard, hub=self.parts.hub),
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
    **body: Any,
) -> tuple[str, Endpoint | None]:
    """A subscription through the API; webhooks get their own receiver endpoint and secret."""
    endpoint = receiver.endpoint() if receiver is not None else None
    document = {"name": f"{member} subscription", "channel": "webhook", **body}
    if endpoint is not None:
        document["url"] = endpoint.url
    response = await harness.client.post(
        "/v1/subscriptions", json=document, headers=harness.tokens(member)
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
