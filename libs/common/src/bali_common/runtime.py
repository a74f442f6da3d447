"""The service runtime: what every `create_app` composes, and the lifespan that runs it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, Depends, FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bali_common.auth import TokenVerifier
from bali_common.db import (
    SessionFactory,
    create_engine,
    create_session_factory,
    create_tables,
    ping,
    utcnow,
)
from bali_common.events.topics import Stream
from bali_common.health import ReadinessCheck, health_router
from bali_common.http.openapi import document_problems
from bali_common.http.text import refuse_nul_characters
from bali_common.http.throttling import EXEMPT_PATHS, Throttle, ThrottleMiddleware
from bali_common.messaging.consumer import ConsumerRunner
from bali_common.messaging.deadletters import DeadLetter
from bali_common.messaging.handlers import ConsumerGroup
from bali_common.messaging.inbox import InboxEntry, purge_applied
from bali_common.messaging.kafka import broker_incarnation, create_producer, ensure_topics
from bali_common.messaging.outbox import (
    SIGNAL_INFO_KEY,
    SOURCE_INFO_KEY,
    BrokerIncarnation,
    OutboxMessage,
    OutboxSignal,
    outbox_backlog,
    purge_sent,
)
from bali_common.messaging.relay import OutboxRelay
from bali_common.metrics import ServiceMetrics, install_http_metrics
from bali_common.problems import install_problem_handlers, problem_response
from bali_common.schema_version import MigrationError, check_at_head
from bali_common.settings import CommonSettings
from bali_common.telemetry import configure_tracing

log = logging.getLogger(__name__)

#: How often the gauges read from the database are refreshed.
_GAUGE_INTERVAL_S = 5.0
#: The bound for the last steps of a stop, after the drain proper.
_LAST_CALL_S = 5.0

BackgroundTask = Callable[["ServiceRuntime"], Awaitable[None]]
StartupHook = Callable[["ServiceRuntime"], Awaitable[None]]
#: Builds a service's own collaborators once the runtime exists (they may need its sessions).
PartsFactory = Callable[["ServiceRuntime"], object]
PartsT = TypeVar("PartsT")

#: Tables of the messaging plumbing that every service database holds.
PLUMBING_MODELS: tuple[type[SQLModel], ...] = (
    OutboxMessage,
    BrokerIncarnation,
    InboxEntry,
    DeadLetter,
)


@dataclass(frozen=True)
class ServiceDefinition:
    """Everything a service is: the composition root fills one in and hands it to `build_app`."""

    name: str
    title: str
    description: str
    models: Sequence[type[SQLModel]]
    routers: Sequence[APIRouter]
    publishes: Sequence[Stream] = ()
    consumer_groups: Sequence[ConsumerGroup] = ()
    on_startup: Sequence[StartupHook] = ()
    background: Sequence[BackgroundTask] = ()
    parts: PartsFactory | None = None
    #: The service's Alembic history (`bali_common.migrations`); None for the library's test
    #: probes, which have none and get their tables created at start.
    migrations: Path | None = None
    version: str = "0.1.0"
    openapi_tags: Sequence[dict[str, Any]] = ()


@dataclass
class ServiceRuntime:
    """Typed state of one running service instance, reachable as `app.state.runtime`."""

    definition: ServiceDefinition
    settings: CommonSettings
    engine: AsyncEngine
    sessions: SessionFactory
    metrics: ServiceMetrics
    verifier: TokenVerifier
    outbox_signal: OutboxSignal
    producer: AIOKafkaProducer | None = None
    relay: OutboxRelay | None = None
    consumers: list[ConsumerRunner] = field(default_factory=list)
    messaging_ready: asyncio.Event = field(default_factory=asyncio.Event)
    parts: object = None
    #: The service's own background work (dispatchers, timers): stopped after the consumers.
    _background: list[asyncio.Task[None]] = field(default_factory=list)
    #: Broker connection, relay and upkeep: stopped last, once what they carry is out.
    _plumbing: list[asyncio.Task[None]] = field(default_factory=list)

    def parts_as(self, kind: type[PartsT]) -> PartsT:
        """The service's own collaborators (`ServiceDefinition.parts`), checked to be `kind`."""
        if not isinstance(self.parts, kind):
            raise TypeError(f"{self.definition.name} was built without {kind.__name__}")
        return self.parts

    async def start(self) -> None:
        await self._check_schema()
        for hook in self.definition.on_startup:
            await hook(self)
        self._plumbing.append(self._spawn(self._start_messaging(), "messaging"))
        self._plumbing.append(self._spawn(self._keep_up(), "upkeep"))
        for task in self.definition.background:
            self._background.append(self._spawn(task(self), task.__name__))

    async def _check_schema(self) -> None:
        """A service with migrations starts only on the schema it was written for: it never
        changes its schema itself (its `migrate` command, a Job or `bali up` does, first)."""
        definition = self.definition
        if definition.migrations is None:
            await create_tables(self.engine, [*PLUMBING_MODELS, *definition.models])
            return
        try:
            await check_at_head(self.engine, definition.migrations, definition.name)
        except MigrationError as error:
            log.critical("refusing to start: %s", error)
            raise

    async def stop(self) -> None:
        """A planned stop drains; the server has closed HTTP intake before this runs.

        The outbox empties and the consumers catch up (bounded by `drain_timeout_s`, logged),
        then the consumers stop and commit, then the service's background work stops (its
        in-flight work records its outcome), then what that staged is published, and only
        then does the broker connection close. Whatever a bound cuts short is still safe:
        outbox rows stay until sent, offsets until applied.
        """
        deadline = time.monotonic() + self.settings.drain_timeout_s
        if self.messaging_ready.is_set():
            await self._drain_until("the outbox to empty", self._outbox_empty, deadline)
            await self._drain_until(
                "the consumers to catch up",
                self._consumers_caught_up,
                deadline,
                quiet=self.settings.drain_quiet_s,
            )
        for consumer in self.consumers:
            await consumer.stop()
        await _stopped(self._background, bound=self.settings.drain_timeout_s)
        if self.messaging_ready.is_set():
            # What the background work staged last: a bounded moment even past the deadline.
            last_call = max(deadline, time.monotonic() + _LAST_CALL_S)
            await self._drain_until("the outbox to empty", self._outbox_empty, last_call)
        await _stopped(self._plumbing, bound=_LAST_CALL_S)
        if self.producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.producer.stop(), _LAST_CALL_S)
        await self.engine.dispose()

    async def _drain_until(
        self,
        what: str,
        condition: Callable[[], Awaitable[bool]],
        deadline: float,
        *,
        quiet: float = 0.0,
    ) -> bool:
        """Wait until `condition` holds for `quiet` seconds on end, or the deadline passes."""
        started = time.monotonic()
        held_since: float | None = None
        announced = False
        while True:
            now = time.monotonic()
            if await condition():
                held_since = now if held_since is None else held_since
                if now - held_since >= quiet:
                    if announced:
                        log.info("drain: %s took %.1fs", what, now - started)
                    return True
            else:
                held_since = None
                if not announced:
                    log.info("drain: waiting for %s", what)
                    announced = True
            if now >= deadline:
                log.warning("drain: gave up waiting for %s after %.1fs", what, now - started)
                return False
            await asyncio.sleep(0.05)

    async def _outbox_empty(self) -> bool:
        self.outbox_signal.notify()
        return await outbox_backlog(self.sessions) == 0

    async def _consumers_caught_up(self) -> bool:
        return all([await consumer.caught_up() for consumer in self.consumers])

    async def refresh_gauges(self) -> None:
        """Gauges read from the database, so that they tell the truth whatever the relay does."""
        self.metrics.outbox_backlog.set(await outbox_backlog(self.sessions))

    async def _keep_up(self) -> None:
        """Every few seconds the gauges; every `retention_purge_interval_s` the retention purge."""
        settings = self.settings
        next_purge = time.monotonic()
        while True:
            try:
                await self.refresh_gauges()
                if time.monotonic() >= next_purge:
                    next_purge = time.monotonic() + settings.retention_purge_interval_s
                    await self._purge_expired()
            except Exception:
                log.exception("upkeep cycle failed; retrying")
            await asyncio.sleep(_GAUGE_INTERVAL_S)

    async def _purge_expired(self) -> None:
        now = utcnow()
        batch = self.settings.retention_purge_batch
        sent = await purge_sent(
            self.sessions,
            older_than=now - timedelta(seconds=self.settings.outbox_retention_s),
            batch=batch,
        )
        applied = await purge_applied(
            self.sessions,
            older_than=now - timedelta(seconds=self.settings.inbox_retention_s),
            batch=batch,
        )
        self.metrics.retention_purged.labels("outbox_messages").inc(sent)
        self.metrics.retention_purged.labels("inbox_entries").inc(applied)
        if sent or applied:
            log.info("retention: purged %d sent outbox rows and %d inbox ids", sent, applied)

    def _spawn(self, coroutine: Awaitable[None], name: str) -> asyncio.Task[None]:
        async def guarded() -> None:
            try:
                await coroutine
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background task %s crashed", name)

        return asyncio.create_task(guarded(), name=f"{self.definition.name}:{name}")

    async def _start_messaging(self) -> None:
        """Connect to the broker in the background, retrying: the API serves meanwhile."""
        delay = 0.2
        while True:
            producer = create_producer(self.settings)
            try:
                await self._create_topics()
                await producer.start()
                break
            except Exception as error:
                with contextlib.suppress(Exception):
                    await producer.stop()
                log.warning("broker not reachable yet (%s); retrying in %.1fs", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.producer = producer
        self.relay = OutboxRelay(
            settings=self.settings,
            session_factory=self.sessions,
            producer=producer,
            signal=self.outbox_signal,
            metrics=self.metrics,
            on_new_broker=self._create_topics,
        )
        self._plumbing.append(self._spawn(self.relay.run(), "outbox-relay"))
        for group in self.definition.consumer_groups:
            runner = ConsumerRunner(
                settings=self.settings,
                session_factory=self.sessions,
                group=group,
                metrics=self.metrics,
            )
            await runner.start()
            self.consumers.append(runner)
        self.messaging_ready.set()

    async def _create_topics(self) -> None:
        if self.settings.kafka_create_topics:
            await ensure_topics(self.settings)

    async def check_database(self) -> None:
        await ping(self.engine)

    async def check_broker(self) -> None:
        if self.producer is None:
            raise ConnectionError("producer not started")
        await broker_incarnation(self.producer.client)


async def _stopped(tasks: list[asyncio.Task[None]], *, bound: float) -> None:
    """Cancel and await `tasks`; one that ignores cancellation past `bound` is left behind."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=bound)
    tasks.clear()


class BodySizeLimit:
    """413 for bodies over the limit (OWASP API4; RFC 9110 section 15.5.14), whether the
    length is declared or the body streams in chunks without one."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # An HTTPException: FastAPI's body parser passes those on to the app's
                    # handlers (any other error there becomes its "error parsing the body" 400).
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except BodyTooLarge:
            # Read outside a route (where no exception handler answers): answer here.
            if started:
                raise
            await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = BodyTooLarge(self.max_bytes)
        response = problem_response(
            Request(scope, receive),
            status=error.status_code,
            title=error.title,
            detail=error.detail,
        )
        await response(scope, receive, send)


class BodyTooLarge(StarletteHTTPException):
    """The request body passed `max_request_bytes` while it was being read."""

    title = "Content Too Large"

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"Request bodies are limited to {max_bytes} bytes.")


def build_app(definition: ServiceDefinition, settings: CommonSettings) -> FastAPI:
    """The app factory every service uses: plumbing once, the service's routes on top."""
    configure_tracing(settings)
    engine = create_engine(settings.resolved_database_url(), echo=settings.database_echo)
    signal = OutboxSignal()
    sessions = create_session_factory(engine)
    sessions.configure(info={SIGNAL_INFO_KEY: signal, SOURCE_INFO_KEY: f"/bali/{definition.name}"})
    runtime = ServiceRuntime(
        definition=definition,
        settings=settings,
        engine=engine,
        sessions=sessions,
        metrics=ServiceMetrics(definition.name),
        verifier=TokenVerifier(settings),
        outbox_signal=signal,
    )
    if definition.parts is not None:
        runtime.parts = definition.parts(runtime)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        await runtime.start()
        try:
            yield {}
        finally:
            await runtime.stop()

    docs = settings.api_docs
    app = FastAPI(
        title=definition.title,
        description=definition.description,
        version=definition.version,
        lifespan=lifespan,
        openapi_tags=list(definition.openapi_tags) or None,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
        dependencies=[Depends(refuse_nul_characters)],
        # FastAPI's own server span per request, continuing the caller's traceparent: its
        # trace id goes into the audit rows and the outbox. Until something exports spans the
        # sampler makes it a non-recording span (ids, no attributes, no processors). Metrics
        # are Prometheus's (`HttpMetrics`); logs are the services' own.
        telemetry={
            "tracing": True,
            "metrics": False,
            "logs": False,
            "operation_spans": False,
        },
    )
    app.state.runtime = runtime
    app.state.token_verifier = runtime.verifier
    throttle = Throttle(settings, runtime.metrics)
    app.state.admit_principal = throttle.admit_principal
    install_problem_handlers(app)
    # Added first, so innermost: the routes read the body through it directly, and a 413
    # raised here never crosses another middleware's task group.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    # Inside the metrics and tracing: a refused request is counted and traced like any other.
    app.add_middleware(ThrottleMiddleware, throttle=throttle)
    install_http_metrics(
        app,
        runtime.metrics,
        before_scrape=runtime.refresh_gauges,
        token=settings.metrics_token,
    )

    degrading: dict[str, ReadinessCheck] = {"broker": runtime.check_broker}
    if throttle.enabled and throttle.shared:
        degrading["rate_limits"] = throttle.check
    app.include_router(health_router({"database": runtime.check_database}, degrading=degrading))
    from bali_common.messaging.routes import router as dead_letter_router

    for router in (*definition.routers, dead_letter_router):
        app.include_router(router)
    _document_problems(app)
    return app


def _document_problems(app: FastAPI) -> None:
    """The app's OpenAPI document, completed with the problems every route shares."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(generate(), unthrottled=EXEMPT_PATHS)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def runtime_of(app: FastAPI) -> ServiceRuntime:
    runtime = app.state.runtime
    assert isinstance(runtime, ServiceRuntime)
    return runtime
