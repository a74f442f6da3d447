"""Real parts outside the service: SMTP server and relay, webhook receiver, TLS files, a canary."""

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

import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from bali_devkit.testing.plugin import (
    serving,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
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
