"""The channels that carry notifications out: email over SMTP and signed webhooks over HTTP."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr, parsedate_to_datetime

import aiosmtplib
import httpcore

from bali_notifications.rendering import Rendered
from bali_notifications.settings import NotificationsSettings
from bali_notifications.signing import webhook_headers
from bali_notifications.ssrf import BlockedDestination, EgressGuard, WebhookTarget

USER_AGENT = "BaliProcess-Webhooks/1.0"


@dataclass(frozen=True)
class SendOutcome:
    """What one attempt came to; the dispatcher turns it into a status and the next step."""

    succeeded: bool
    latency_ms: int
    status_code: int | None = None
    error: str | None = None
    permanent: bool = False
    disable_endpoint: bool = False
    retry_after_s: float | None = None


def _elapsed_ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


class EmailChannel:
    """One SMTP session per message: simple, and a broken connection never poisons the next."""

    def __init__(self, settings: NotificationsSettings) -> None:
        self._settings = settings
        domain = parseaddr(settings.smtp_from)[1].rpartition("@")[2]
        self._domain = domain or "bali-process.example"
        # None: aiosmtplib's default context, which verifies against the system CAs. Either
        # way the certificate chain and the host name are checked; nothing turns that off.
        self._tls_context = (
            ssl.create_default_context(cafile=str(settings.smtp_ca_file))
            if settings.smtp_ca_file
            else None
        )

    def message(
        self,
        *,
        delivery_id: str,
        to: str,
        rendered: Rendered,
        headers: Mapping[str, str],
        now: datetime,
    ) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self._settings.smtp_from
        message["To"] = to
        message["Subject"] = rendered.subject
        message["Date"] = format_datetime(now)
        # Stable per delivery: a resend after a crash is recognisably the same message.
        message["Message-ID"] = f"<{delivery_id}@{self._domain}>"
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834 section 5
        for name, value in headers.items():
            message[name] = value
        message.set_content(rendered.text)
        message.add_alternative(rendered.html, subtype="html")
        return message

    async def send(self, message: EmailMessage) -> SendOutcome:
        settings = self._settings
        started = time.perf_counter()
        try:
            await aiosmtplib.send(
                message,
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username,
                password=(
                    settings.smtp_password.get_secret_value() if settings.smtp_password else None
                ),
                use_tls=settings.smtp_implicit_tls,
                start_tls=settings.smtp_starttls,
                tls_context=self._tls_context,
                timeout=settings.smtp_timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as error:
            codes = [refused.code for refused in error.recipients]
            code = max(codes) if codes else None
            return SendOutcome(
                succeeded=False,
                latency_ms=_elapsed_ms(started),
                status_code=code,
                error=f"recipient refused: {error}",
                # RFC 5321 section 4.2.1: 5yz is a permanent negative reply.
                permanent=code is not None and code >= 500,
            )
        except aiosmtplib.SMTPResponseException as error:
            return SendOutcome(
                succeeded=False,
                latency_ms=_elapsed_ms(started),
                status_code=error.code,
                error=f"SMTP {error.code}: {error.message}",
                permanent=_refuses_the_message(error),
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            return SendOutcome(
                succeeded=False,
                latency_ms=_elapsed_ms(started),
                error=f"{type(error).__name__}: {error}",
            )
        return SendOutcome(succeeded=True, latency_ms=_elapsed_ms(started), status_code=250)


#: RFC 4954 replies about our own session (login required, credentials invalid, mechanism
#: too weak, encryption required), whatever the command that drew them.
_SESSION_REPLIES = frozenset({530, 534, 535, 538})


def _refuses_the_message(error: aiosmtplib.SMTPResponseException) -> bool:
    """A 5yz reply (RFC 5321 section 4.2.1) to the message itself fails it for good.

    A refused login, a missing STARTTLS or a greeting that turns us away is a
    fault of the relay or of our configuration, the same for every message:
    once an operator fixes it the delivery must go through, so it is retried.
    """
    message_replies = (
        aiosmtplib.SMTPSenderRefused,
        aiosmtplib.SMTPRecipientRefused,
        aiosmtplib.SMTPDataError,
    )
    return (
        isinstance(error, message_replies)
        and 500 <= error.code < 600
        and error.code not in _SESSION_REPLIES
    )


class _CheckedConnections(httpcore.AsyncNetworkBackend):
    """Resolves and checks the host at connect time, then connects to that checked address.

    The TLS layer above still verifies the certificate against the host name
    (SNI and Host stay the name), so pinning the address loses no security.
    """

    def __init__(self, guard: EgressGuard, scheme: str) -> None:
        self._guard = guard
        self._scheme = scheme
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._guard.addresses_for(host, port, scheme=self._scheme)
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                last_error = error
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedDestination("unix sockets are never webhook destinations")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class WebhookChannel:
    """Signed POSTs per Standard Webhooks; redirects are never followed (httpcore has none)."""

    def __init__(self, settings: NotificationsSettings, guard: EgressGuard) -> None:
        self._settings = settings
        self._guard = guard
        context = (
            ssl.create_default_context(cafile=settings.webhook_ca_file)
            if settings.webhook_ca_file
            else None
        )
        self._pools = {
            scheme: httpcore.AsyncConnectionPool(
                ssl_context=context,
                max_connections=max(10, settings.dispatch_concurrency),
                keepalive_expiry=30.0,
                network_backend=_CheckedConnections(guard, scheme),
            )
            for scheme in ("https", "http")
        }

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()

    async def send(
        self,
        *,
        url: str,
        message_id: str,
        secrets_in_use: list[str],
        body: bytes,
        timestamp: int,
    ) -> SendOutcome:
        started = time.perf_counter()
        try:
            target = self._guard.parse(url)
            headers = self._headers(target, message_id, secrets_in_use, body, timestamp)
            async with asyncio.timeout(self._settings.webhook_timeout_s):
                return await self._post(target, headers, body, started)
        except BlockedDestination as error:
            return SendOutcome(
                succeeded=False, latency_ms=_elapsed_ms(started), error=f"blocked: {error}"
            )
        except TimeoutError:
            return SendOutcome(
                succeeded=False,
                latency_ms=_elapsed_ms(started),
                error=f"timed out after {self._settings.webhook_timeout_s:g} s",
            )
        except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError) as error:
            return SendOutcome(
                succeeded=False,
                latency_ms=_elapsed_ms(started),
                error=f"{type(error).__name__}: {error}",
            )

    def _headers(
        self,
        target: WebhookTarget,
        message_id: str,
        secrets_in_use: list[str],
        body: bytes,
        timestamp: int,
    ) -> list[tuple[bytes, bytes]]:
        default_port = 443 if target.scheme == "https" else 80
        host = f"[{target.host}]" if ":" in target.host else target.host
        authority = host if target.port == default_port else f"{host}:{target.port}"
        signed = webhook_headers(
            secrets_in_use, message_id=message_id, timestamp=timestamp, body=body
        )
        headers = {
            "Host": authority,
            "User-Agent": USER_AGENT,
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            **signed,
        }
        return [(name.encode(), value.encode()) for name, value in headers.items()]

    async def _post(
        self,
        target: WebhookTarget,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        started: float,
    ) -> SendOutcome:
        timeout = self._settings.webhook_timeout_s
        url = httpcore.URL(
            scheme=target.scheme.encode(),
            host=target.host.encode(),
            port=target.port,
            target=target.target.encode(),
        )
        pool = self._pools[target.scheme]
        extensions = {
            "timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
        }
        async with pool.stream(
            "POST", url, headers=headers, content=body, extensions=extensions
        ) as response:
            received = 0
            async for chunk in response.aiter_stream():
                received += len(chunk)
                if received >= self._settings.webhook_max_response_bytes:
                    break
            status = response.status
            response_headers = {
                name.decode("latin-1").lower(): value.decode("latin-1")
                for name, value in response.headers
            }
        return _classify(status, response_headers, _elapsed_ms(started))


def _classify(status: int, headers: Mapping[str, str], latency_ms: int) -> SendOutcome:
    """Standard Webhooks status handling: 2xx done, 410 disables, 429 waits, the rest retries."""
    if 200 <= status < 300:
        return SendOutcome(succeeded=True, latency_ms=latency_ms, status_code=status)
    if 300 <= status < 400:
        location = headers.get("location", "")
        return SendOutcome(
            succeeded=False,
            latency_ms=latency_ms,
            status_code=status,
            error=f"redirect not followed (Location: {location[:300]})",
        )
    if status == 410:
        return SendOutcome(
            succeeded=False,
            latency_ms=latency_ms,
            status_code=status,
            error="410 Gone: endpoint disabled",
            permanent=True,
            disable_endpoint=True,
        )
    return SendOutcome(
        succeeded=False,
        latency_ms=latency_ms,
        status_code=status,
        error=f"HTTP {status}",
        retry_after_s=retry_after_seconds(headers.get("retry-after")) if status == 429 else None,
    )


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """RFC 9110 section 10.2.3: delay-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    reference = now or datetime.now(moment.tzinfo)
    return max(0.0, (moment - reference).total_seconds())
