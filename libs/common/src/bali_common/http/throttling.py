"""Rate limits per client address and per member (OWASP API4), stricter on refused credentials
and on requests without any, with counters in `limits` storage that the replicas share."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from fastapi import Request
from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bali_common.auth import Principal
from bali_common.metrics import ServiceMetrics
from bali_common.problems import ProblemError, problem_response
from bali_common.settings import CommonSettings

log = logging.getLogger(__name__)

#: Probes and scrapes are never throttled: monitoring must see a service under attack.
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
#: Answers that count as refused credentials: 401 always, 403 to a request that carried no
#: bearer token (the refusal of a signed link, which is its credential).
_REFUSED_CREDENTIALS = 401
_REFUSED_LINK = 403
#: At most one warning per this many seconds while the shared counters are unreachable.
_WARN_EVERY_S = 60.0


@dataclass(frozen=True)
class Refusal:
    """A request over a limit: which rule, and when the client may try again."""

    rule: str
    limit: RateLimitItem
    retry_after_s: int

    def detail(self) -> str:
        return (
            f"Rate limit exceeded: {self.limit} {self.rule.replace('_', ' ')}. "
            f"Retry after {self.retry_after_s} s."
        )

    def problem(self) -> ProblemError:
        """429 with Retry-After (RFC 6585 section 4; RFC 9110 section 10.2.3)."""
        return ProblemError(
            429,
            "Too Many Requests",
            self.detail(),
            slug="rate-limited",
            headers={"Retry-After": str(self.retry_after_s)},
        )


class Throttle:
    """The limits of one service instance; the counters live in `rate_limit_storage_url`.

    A sliding-window counter per key: close to a moving window's accuracy at a fixed cost of
    two counters per key, where a moving window stores one entry per request.
    """

    def __init__(self, settings: CommonSettings, metrics: ServiceMetrics) -> None:
        self.enabled = settings.rate_limit_enabled
        storage = storage_from_string(settings.rate_limit_storage_url, wrap_exceptions=True)
        assert isinstance(storage, Storage), "rate_limit_storage_url must name async storage"
        self.storage = storage
        self._limiter = SlidingWindowCounterRateLimiter(self.storage)
        #: Counters shared by the replicas (not the per-process memory storage).
        self.shared = not settings.rate_limit_storage_url.startswith("async+memory")
        self._service = settings.service_name
        self._metrics = metrics
        self.per_address = parse(settings.rate_limit_per_address)
        self.per_member = parse(settings.rate_limit_per_member)
        self.failed_auth = parse(settings.rate_limit_failed_auth_per_address)
        self.anonymous = parse(settings.rate_limit_anonymous_per_address)
        self._warned_at = -math.inf

    async def admit_request(self, address: str, *, anonymous: bool) -> Refusal | None:
        """Before the route runs: the address's refused credentials, requests and, without a
        bearer token, its anonymous requests."""
        if not await self._test(self.failed_auth, "per_address_after_refused_credentials", address):
            return await self._refusal(
                self.failed_auth, "per_address_after_refused_credentials", address
            )
        refusal = await self._hit(self.per_address, "per_address", address)
        if refusal is None and anonymous:
            refusal = await self._hit(self.anonymous, "per_address_without_credentials", address)
        return refusal

    async def record_answer(self, address: str, status: int, *, anonymous: bool) -> None:
        """After the route answered: count refused credentials against the address."""
        if status == _REFUSED_CREDENTIALS or (anonymous and status == _REFUSED_LINK):
            await self._hit(self.failed_auth, "per_address_after_refused_credentials", address)

    async def admit_principal(self, principal: Principal) -> None:
        """Once the bearer token is verified: the member's budget (`ProblemError` 429)."""
        if not self.enabled:
            return
        who = f"member:{principal.member_id}" if principal.member_id else principal.subject
        refusal = await self._hit(self.per_member, "per_member", who)
        if refusal is not None:
            raise refusal.problem()

    async def check(self) -> None:
        """Readiness check of shared counters (degrading: limits fail open without them)."""
        if not await self.storage.check():
            raise ConnectionError("rate limit storage unreachable")

    async def _hit(self, limit: RateLimitItem, rule: str, key: str) -> Refusal | None:
        try:
            if await self._limiter.hit(limit, self._service, rule, key):
                return None
        except Exception as error:
            self._storage_failed(error)
            return None
        return await self._refusal(limit, rule, key)

    async def _test(self, limit: RateLimitItem, rule: str, key: str) -> bool:
        try:
            return await self._limiter.test(limit, self._service, rule, key)
        except Exception as error:
            self._storage_failed(error)
            return True

    async def _refusal(self, limit: RateLimitItem, rule: str, key: str) -> Refusal:
        self._metrics.http_throttled.labels(rule).inc()
        try:
            stats = await self._limiter.get_window_stats(limit, self._service, rule, key)
            wait = stats.reset_time - time.time()
        except Exception as error:
            self._storage_failed(error)
            wait = limit.get_expiry()
        return Refusal(rule=rule, limit=limit, retry_after_s=max(1, math.ceil(wait)))

    def _storage_failed(self, error: Exception) -> None:
        """Fail open: refusing every request because the counters are away would be an outage
        of its own, on the alert path too."""
        self._metrics.rate_limit_storage_errors.inc()
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY_S:
            self._warned_at = now
            log.warning("rate limit storage failed, admitting requests: %s", error)


class ThrottleMiddleware:
    """Applies the address limits to every request but probes and scrapes, and counts the
    refused credentials of the answers."""

    def __init__(self, app: ASGIApp, *, throttle: Throttle) -> None:
        self.app = app
        self.throttle = throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS or not self.throttle.enabled:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else "unknown"
        anonymous = not any(name == b"authorization" for name, _ in scope.get("headers", []))
        refusal = await self.throttle.admit_request(address, anonymous=anonymous)
        if refusal is not None:
            problem = refusal.problem()
            response = problem_response(
                Request(scope, receive),
                status=problem.status,
                title=problem.title,
                detail=problem.detail,
                slug=problem.slug,
                headers=problem.headers,
            )
            await response(scope, receive, send)
            return
        status = 0

        async def watched_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        await self.app(scope, receive, watched_send)
        await self.throttle.record_answer(address, status, anonymous=anonymous)
