"""Webhooks per Standard Webhooks: signed POSTs to the subscription's endpoint, SSRF-guarded."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime

import httpcore
from bali_common.db import utcnow
from bali_common.http.integers import parse_decimal

from bali_notifications.channels import (
    Notification,
    SendResult,
    Target,
    UnusableTarget,
    elapsed_ms,
)
from bali_notifications.rendering import webhook_body
from bali_notifications.secrets_at_rest import SecretBox, UnreadableSecret
from bali_notifications.settings import NotificationsSettings
from bali_notifications.signing import webhook_headers
from bali_notifications.ssrf import BlockedDestination, EgressGuard, WebhookTarget
from bali_notifications.subscriptions.models import Subscription

USER_AGENT = "BaliProcess-Webhooks/1.0"


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


class WebhookSender:
    """Signed POSTs per Standard Webhooks; redirects are never followed (httpcore has none)."""

    def __init__(self, settings: NotificationsSettings, guard: EgressGuard, box: SecretBox) -> None:
        self._settings = settings
        self._guard = guard
        self._box = box
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

    async def check_target(self, target: Target) -> Target:
        if not target.url:
            raise UnusableTarget("url", "required for the webhook channel")
        if target.email is not None:
            raise UnusableTarget("email", "only email subscriptions have an address")
        try:
            return Target(url=(await self._guard.check(target.url)).url)
        except BlockedDestination as error:
            raise UnusableTarget("url", str(error)) from error

    def address_of(self, subscription: Subscription) -> str:
        # Each endpoint has its own deliveries, whatever its URL becomes.
        return subscription.id

    async def send(self, notification: Notification, *, now: datetime) -> SendResult:
        job = notification.job
        subscription = job.subscription
        assert subscription is not None
        assert subscription.url is not None
        body = webhook_body(
            event_type=job.source.event_type,
            event_id=job.source.event_id,
            occurred_at=job.source.occurred_at,
            data=job.source.data,
        )
        try:
            secrets_in_use = self._box.active(subscription.secrets, utcnow())
        except UnreadableSecret as error:
            # Retried: restoring the key to BALI_WEBHOOK_SECRET_KEYS lets it through.
            return SendResult(succeeded=False, latency_ms=0, error=str(error))
        return await self.post(
            url=subscription.url,
            # Standard Webhooks: the id is the same on every retry so receivers can dedupe.
            message_id=job.delivery.id,
            secrets_in_use=secrets_in_use,
            body=body,
            # The receiver checks freshness against its own clock: always the real send time.
            timestamp=int(time.time()),
        )

    async def post(
        self,
        *,
        url: str,
        message_id: str,
        secrets_in_use: list[str],
        body: bytes,
        timestamp: int,
    ) -> SendResult:
        """One signed POST; the URL is checked again at connect time."""
        started = time.perf_counter()
        try:
            target = self._guard.parse(url)
            headers = self._headers(target, message_id, secrets_in_use, body, timestamp)
            async with asyncio.timeout(self._settings.webhook_timeout_s):
                return await self._request(target, headers, body, started)
        except (
            BlockedDestination,
            TimeoutError,
            httpcore.TimeoutException,
            httpcore.NetworkError,
            httpcore.ProtocolError,
        ) as error:
            return failed_request(
                error, latency_ms=elapsed_ms(started), timeout_s=self._settings.webhook_timeout_s
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

    async def _request(
        self,
        target: WebhookTarget,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        started: float,
    ) -> SendResult:
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
        return classify_response(status, response_headers, elapsed_ms(started))


def failed_request(error: Exception, *, latency_ms: int, timeout_s: float) -> SendResult:
    """A request that got no answer: refused by the guard, timed out or broken; all retried."""
    if isinstance(error, BlockedDestination):
        reason = f"blocked: {error}"
    elif isinstance(error, TimeoutError):
        reason = f"timed out after {timeout_s:g} s"
    else:
        reason = f"{type(error).__name__}: {error}"
    return SendResult(succeeded=False, latency_ms=latency_ms, error=reason)


def classify_response(status: int, headers: Mapping[str, str], latency_ms: int) -> SendResult:
    """Standard Webhooks status handling: 2xx done, 410 disables, 429 waits, the rest retries."""
    if 200 <= status < 300:
        return SendResult(succeeded=True, latency_ms=latency_ms, status_code=status)
    if 300 <= status < 400:
        location = headers.get("location", "")
        return SendResult(
            succeeded=False,
            latency_ms=latency_ms,
            status_code=status,
            error=f"redirect not followed (Location: {location[:300]})",
        )
    if status == 410:
        return SendResult(
            succeeded=False,
            latency_ms=latency_ms,
            status_code=status,
            error="410 Gone: endpoint disabled",
            permanent=True,
            disable_endpoint=True,
        )
    return SendResult(
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
    seconds = parse_decimal(value)
    if seconds is not None:
        return float(seconds)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    reference = now or datetime.now(moment.tzinfo)
    return max(0.0, (moment - reference).total_seconds())
