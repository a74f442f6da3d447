"""Prometheus metrics of one service instance, in its own registry (no process-global state)."""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bali_common.problems import problem_response


class ServiceMetrics:
    def __init__(self, service_name: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = {"service": service_name}
        self.http_requests = Counter(
            "bali_http_requests_total",
            "HTTP requests by route template, method and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "bali_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["method", "route"],
            registry=self.registry,
        )
        self.outbox_backlog = Gauge(
            "bali_outbox_backlog",
            "Outbox rows committed but not yet acknowledged by the broker",
            registry=self.registry,
        )
        self.outbox_published = Counter(
            "bali_outbox_published_total",
            "Outbox rows the broker acknowledged",
            ["topic"],
            registry=self.registry,
        )
        self.outbox_publish_failures = Counter(
            "bali_outbox_publish_failures_total",
            "Publish attempts that failed and will be retried",
            registry=self.registry,
        )
        self.outbox_replayed = Counter(
            "bali_outbox_replayed_total",
            "Kept outbox rows published again because the broker was a new incarnation",
            registry=self.registry,
        )
        self.retention_purged = Counter(
            "bali_retention_purged_total",
            "Sent outbox rows and applied inbox ids deleted after their retention window",
            ["table"],
            registry=self.registry,
        )
        self.consumer_restarts = Counter(
            "bali_consumer_restarts_total",
            "Consumers replaced after repeated failed commits or fetches (e.g. a broker restart)",
            ["group"],
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "bali_consumer_lag",
            "Records behind the partition high-water mark",
            ["group", "topic", "partition"],
            registry=self.registry,
        )
        self.events_applied = Counter(
            "bali_events_applied_total",
            "Events applied by a consumer (recorded in its inbox)",
            ["group", "type"],
            registry=self.registry,
        )
        self.events_duplicate = Counter(
            "bali_events_duplicate_total",
            "Redelivered events skipped because the inbox already had them",
            ["group"],
            registry=self.registry,
        )
        self.events_retried = Counter(
            "bali_events_retried_total",
            "Handler failures that were retried",
            ["group"],
            registry=self.registry,
        )
        self.events_dead_lettered = Counter(
            "bali_events_dead_lettered_total",
            "Events sent to the dead-letter topic",
            ["group"],
            registry=self.registry,
        )
        self.http_throttled = Counter(
            "bali_http_throttled_total",
            "Requests refused with 429 by a rate limit",
            ["rule"],
            registry=self.registry,
        )
        self.rate_limit_storage_errors = Counter(
            "bali_rate_limit_storage_errors_total",
            "Rate limit checks that failed to reach the counters (the request was admitted)",
            registry=self.registry,
        )
        self.service_info = Gauge(
            "bali_service_info", "Static service information", ["service"], registry=self.registry
        )
        self.service_info.labels(**labels).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def install_http_metrics(
    app: FastAPI,
    metrics: ServiceMetrics,
    *,
    before_scrape: Callable[[], Awaitable[None]] | None = None,
    token: SecretStr | None = None,
) -> None:
    """Count by route template, not raw path, so ids do not explode label cardinality.

    `before_scrape` refreshes gauges read from the database, so a scrape never shows a
    stale value while, say, the relay is stuck on an absent broker. With `token`, a scrape
    must present it as a bearer token (RFC 6750 section 2.1).
    """

    app.add_middleware(HttpMetrics, metrics=metrics)

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint(request: Request) -> Response:
        if token is not None and not _presents(request, token):
            return problem_response(
                request,
                status=401,
                title="Unauthorized",
                detail="Scrapes need the metrics bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if before_scrape is not None:
            await before_scrape()
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)


class HttpMetrics:
    """Counts and times requests by route template (pure ASGI: nothing runs per request but
    the clock and two metric updates)."""

    def __init__(self, app: ASGIApp, *, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # The router sets the matched route in the shared scope on the way in.
            template = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self.metrics.http_requests.labels(method, template, str(status)).inc()
            self.metrics.http_latency.labels(method, template).observe(
                time.perf_counter() - started
            )


def _presents(request: Request, token: SecretStr) -> bool:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    expected = token.get_secret_value().encode()
    # Bytes: compare_digest raises on str holding non-ASCII, and the header is the caller's.
    given = credentials.strip().encode("utf-8", "surrogateescape")
    return scheme.lower() == "bearer" and hmac.compare_digest(given, expected)
