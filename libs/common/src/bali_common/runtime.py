"""The service runtime: what every `create_app` composes, and the lifespan that runs it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, FastAPI, Request, Response
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bali_common.auth import TokenVerifier
from bali_common.db import (
    SessionFactory,
    create_engine,
    create_session_factory,
    create_tables,
    ping,
)
from bali_common.events.topics import Stream
from bali_common.health import health_router
from bali_common.messaging.consumer import ConsumerRunner
from bali_common.messaging.deadletters import DeadLetter
from bali_common.messaging.handlers import ConsumerGroup
from bali_common.messaging.inbox import InboxEntry
from bali_common.messaging.kafka import create_producer, ensure_topics
from bali_common.messaging.outbox import (
    SIGNAL_INFO_KEY,
    SOURCE_INFO_KEY,
    OutboxMessage,
    OutboxRelay,
    OutboxSignal,
)
from bali_common.metrics import ServiceMetrics, install_http_metrics
from bali_common.problems import install_problem_handlers, problem_response
from bali_common.settings import CommonSettings
from bali_common.telemetry import configure_tracing, server_span

log = logging.getLogger(__name__)

BackgroundTask = Callable[["ServiceRuntime"], Awaitable[None]]
StartupHook = Callable[["ServiceRuntime"], Awaitable[None]]
#: Builds a service's own collaborators once the runtime exists (they may need its sessions).
PartsFactory = Callable[["ServiceRuntime"], object]
PartsT = TypeVar("PartsT")

#: Tables of the messaging plumbing that every service database holds.
PLUMBING_MODELS: tuple[type[SQLModel], ...] = (OutboxMessage, InboxEntry, DeadLetter)


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
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def parts_as(self, kind: type[PartsT]) -> PartsT:
        """The service's own collaborators (`ServiceDefinition.parts`), checked to be `kind`."""
        if not isinstance(self.parts, kind):
            raise TypeError(f"{self.definition.name} was built without {kind.__name__}")
        return self.parts

    async def start(self) -> None:
        await create_tables(self.engine, [*PLUMBING_MODELS, *self.definition.models])
        for hook in self.definition.on_startup:
            await hook(self)
        self._spawn(self._start_messaging(), "messaging")
        for task in self.definition.background:
            self._spawn(task(self), task.__name__)

    async def stop(self) -> None:
        for consumer in self.consumers:
            await consumer.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.relay is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.relay.drain(), 5)
        if self.producer is not None:
            await self.producer.stop()
        await self.engine.dispose()

    def _spawn(self, coroutine: Awaitable[None], name: str) -> None:
        async def guarded() -> None:
            try:
                await coroutine
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background task %s crashed", name)

        self._tasks.append(asyncio.create_task(guarded(), name=f"{self.definition.name}:{name}"))

    async def _start_messaging(self) -> None:
        """Connect to the broker in the background, retrying: the API serves meanwhile."""
        delay = 0.2
        while True:
            producer = create_producer(self.settings)
            try:
                if self.settings.kafka_create_topics:
                    await ensure_topics(self.settings)
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
        )
        self._spawn(self.relay.run(), "outbox-relay")
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

    async def check_database(self) -> None:
        await ping(self.engine)

    async def check_broker(self) -> None:
        if self.producer is None:
            raise ConnectionError("producer not started")
        await self.producer.client.fetch_all_metadata()


class BodySizeLimit:
    """413 for bodies over the limit, checked while streaming (OWASP API4)."""

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

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            Request(scope, receive),
            status=413,
            title="Content Too Large",
            detail=f"Request bodies are limited to {self.max_bytes} bytes.",
        )
        await response(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


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

    app = FastAPI(
        title=definition.title,
        description=definition.description,
        version=definition.version,
        lifespan=lifespan,
        openapi_tags=list(definition.openapi_tags) or None,
    )
    app.state.runtime = runtime
    app.state.token_verifier = runtime.verifier
    install_problem_handlers(app)
    install_http_metrics(app, runtime.metrics)

    @app.middleware("http")
    async def trace_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        name = f"{request.method} {request.url.path}"
        with server_span(name, request.headers.get("traceparent")) as span:
            response = await call_next(request)
            route = request.scope.get("route")
            if route is not None:
                span.update_name(f"{request.method} {getattr(route, 'path', '')}")
            span.set_attribute("http.response.status_code", response.status_code)
            return response

    app.include_router(
        health_router({"database": runtime.check_database, "broker": runtime.check_broker})
    )
    from bali_common.messaging.routes import router as dead_letter_router

    for router in (*definition.routers, dead_letter_router):
        app.include_router(router)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    return app


def runtime_of(app: FastAPI) -> ServiceRuntime:
    runtime = app.state.runtime
    assert isinstance(runtime, ServiceRuntime)
    return runtime
