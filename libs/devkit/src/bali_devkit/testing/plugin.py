"""Pytest plugin (`-p bali_devkit.testing.plugin`): the embedded broker, fresh databases, tokens.

Tests talk to real parts: one embedded broker per test session (topics get a
per-test prefix so tests never see each other's events), a fresh SQLite file
per service, or a fresh PostgreSQL database when BALI_TEST_POSTGRES_URL is set,
at the head of the service's migrations.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar
from uuid import uuid4

import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from bali_common.auth import Role, issue_dev_token
from bali_common.events.envelope import CloudEvent
from bali_common.events.topics import TopicSpec
from bali_common.migrations import upgrade
from bali_common.settings import CommonSettings
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from bali_devkit.broker import EmbeddedBroker
from bali_devkit.migrations import migrations_of

SettingsT = TypeVar("SettingsT", bound=CommonSettings)

POSTGRES_ENV = "BALI_TEST_POSTGRES_URL"
KAFKA_ENV = "BALI_TEST_KAFKA_BOOTSTRAP"

#: Short group timeouts: tansu takes about half the session timeout to join a group.
FAST_KAFKA = {
    "kafka_session_timeout_ms": 6000,
    "kafka_heartbeat_interval_ms": 300,
    "kafka_rebalance_timeout_ms": 3000,
    "kafka_fetch_max_wait_ms": 10,
    "kafka_request_timeout_ms": 10000,
    "outbox_poll_interval_s": 0.2,
    "consumer_retry_backoff_s": 0.05,
    "drain_quiet_s": 0.2,
    "drain_timeout_s": 10.0,
}


def postgres_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


@pytest.fixture(scope="session")
def embedded_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker | None]:
    """The embedded broker for the whole session; None when an external cluster is configured."""
    if os.environ.get(KAFKA_ENV):
        yield None
        return
    broker = EmbeddedBroker(log_file=tmp_path_factory.mktemp("broker") / "tansu.log")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(embedded_broker: EmbeddedBroker | None) -> str:
    if embedded_broker is None:
        return os.environ[KAFKA_ENV]
    return embedded_broker.bootstrap_servers


@pytest.fixture
def topic_prefix() -> str:
    return f"t{uuid4().hex[:10]}."


class DatabaseFactory:
    """Hands out a fresh database per call and drops the PostgreSQL ones afterwards.

    The database of a service with migrations (`bali_<name>`) comes at their head: a copy of
    a template migrated once per session, so that every test runs on the schema the
    migrations build, for the price of a file copy or a `CREATE DATABASE ... TEMPLATE`.
    """

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._created: list[str] = []

    async def create(self, name: str, *, migrated: bool = True) -> str:
        """A new database for the service `name`; `migrated=False`: an empty one."""
        server = postgres_url()
        history = _history_of(name) if migrated else None
        if server is None:
            path = self._directory / f"{name}-{uuid4().hex[:6]}.db"
            if history is not None:
                shutil.copyfile(await _TEMPLATES.sqlite(name, history), path)
            return f"sqlite+aiosqlite:///{path}"
        template = await _TEMPLATES.postgres(server, name, history) if history else None
        database = f"{_database_prefix()}_{uuid4().hex[:12]}"
        await _create_postgres_database(server, database, template=template)
        self._created.append(database)
        return str(make_url(server).set(database=database))

    async def drop_all(self) -> None:
        server = postgres_url()
        if server is None or not self._created:
            return
        import asyncpg

        connection = await asyncpg.connect(_admin_dsn(server))
        try:
            for database in self._created:
                await connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await connection.close()


def _history_of(name: str) -> Path | None:
    try:
        return migrations_of(name) if name.isidentifier() else None
    except LookupError:
        return None


def _database_prefix() -> str:
    return os.environ.get("BALI_TEST_DB_PREFIX", "bali_test")


async def _create_postgres_database(server: str, database: str, *, template: str | None) -> None:
    import asyncpg

    statement = f'CREATE DATABASE "{database}"' + (f' TEMPLATE "{template}"' if template else "")
    connection = await asyncpg.connect(_admin_dsn(server))
    try:
        for attempt in range(50):
            try:
                await connection.execute(statement)
                return
            except asyncpg.ObjectInUseError:
                # The template's last migration connection may still be closing.
                if attempt == 49:
                    raise
                await asyncio.sleep(0.1)
    finally:
        await connection.close()


class _Templates:
    """One migrated database per service and backend for the session, copied for each test."""

    def __init__(self) -> None:
        self._directory: Path | None = None
        self._sqlite: dict[str, Path] = {}
        self._postgres: dict[tuple[str, str], str] = {}
        self._server: str | None = None

    async def sqlite(self, name: str, history: Path) -> Path:
        if name not in self._sqlite:
            if self._directory is None:
                self._directory = Path(tempfile.mkdtemp(prefix="bali-test-templates-"))
            path = self._directory / f"{name}.db"
            await upgrade(f"sqlite+aiosqlite:///{path}", history, quiet=True)
            self._sqlite[name] = path
        return self._sqlite[name]

    async def postgres(self, server: str, name: str, history: Path) -> str:
        key = (server, name)
        if key not in self._postgres:
            database = f"{_database_prefix()}_template_{name}_{uuid4().hex[:6]}"
            await _create_postgres_database(server, database, template=None)
            self._server = server
            self._postgres[key] = database
            await upgrade(str(make_url(server).set(database=database)), history, quiet=True)
        return self._postgres[key]

    async def drop_all(self) -> None:
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
        if self._server is None or not self._postgres:
            return
        import asyncpg

        connection = await asyncpg.connect(_admin_dsn(self._server))
        try:
            for database in self._postgres.values():
                await connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await connection.close()


_TEMPLATES = _Templates()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    asyncio.run(_TEMPLATES.drop_all())


def _admin_dsn(server: str) -> str:
    url = make_url(server).set(drivername="postgresql", database="postgres")
    return url.render_as_string(hide_password=False)


@pytest.fixture
async def databases(tmp_path: Path) -> AsyncIterator[DatabaseFactory]:
    factory = DatabaseFactory(tmp_path)
    yield factory
    await factory.drop_all()


class SettingsFactory:
    def __init__(
        self, *, data_dir: Path, bootstrap: str, prefix: str, databases: DatabaseFactory
    ) -> None:
        self.data_dir = data_dir
        self.bootstrap = bootstrap
        self.prefix = prefix
        self._databases = databases

    async def __call__(self, cls: type[SettingsT], **overrides: Any) -> SettingsT:
        values: dict[str, Any] = {
            "data_dir": self.data_dir,
            "kafka_bootstrap_servers": self.bootstrap,
            "kafka_topic_prefix": self.prefix,
            **FAST_KAFKA,
        }
        values.update(overrides)
        if "database_url" not in overrides:
            name = str(values.get("service_name") or cls.model_fields["service_name"].default)
            values["database_url"] = await self._databases.create(name)
        return cls(**values)


@contextlib.asynccontextmanager
async def settings_factory_for(
    kafka_bootstrap: str, directory: Path
) -> AsyncIterator[SettingsFactory]:
    """`make_settings` for module-scoped fixtures: its own topic prefix and databases."""
    databases = DatabaseFactory(directory)
    try:
        yield SettingsFactory(
            data_dir=directory,
            bootstrap=kafka_bootstrap,
            prefix=f"t{uuid4().hex[:10]}.",
            databases=databases,
        )
    finally:
        await databases.drop_all()


@pytest.fixture
def make_settings(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str, databases: DatabaseFactory
) -> SettingsFactory:
    return SettingsFactory(
        data_dir=tmp_path, bootstrap=kafka_bootstrap, prefix=topic_prefix, databases=databases
    )


@contextlib.asynccontextmanager
async def running(
    app: FastAPI, *, wait_for_messaging: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and give an HTTP client bound to it (ASGI, no sockets)."""
    async with app.router.lifespan_context(app):
        if wait_for_messaging:
            runtime = app.state.runtime
            await asyncio.wait_for(runtime.messaging_ready.wait(), 30)
            for consumer in runtime.consumers:
                await asyncio.wait_for(consumer.ready.wait(), 30)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


def bearer(
    settings: CommonSettings,
    *,
    member: str | None = None,
    roles: Sequence[Role] = (Role.member,),
    subject: str | None = None,
) -> dict[str, str]:
    token = issue_dev_token(
        settings,
        subject=subject or f"user-of-{member or 'platform'}",
        member_id=member,
        roles=list(roles),
    )
    return {"Authorization": f"Bearer {token}"}


class TokenBook:
    """Bearer headers for test callers, signed once per identity."""

    def __init__(self, settings: CommonSettings) -> None:
        self._settings = settings
        self._issued: dict[tuple[str | None, tuple[Role, ...], str | None], dict[str, str]] = {}

    def __call__(
        self,
        member: str | None = "MY",
        roles: Sequence[Role] = (Role.member,),
        subject: str | None = None,
    ) -> dict[str, str]:
        key = (member, tuple(roles), subject)
        if key not in self._issued:
            self._issued[key] = bearer(self._settings, member=member, roles=roles, subject=subject)
        return self._issued[key]

    def admin(self) -> dict[str, str]:
        return self(None, (Role.admin,), subject="platform-admin")

    def co_chair(self, member: str = "ID") -> dict[str, str]:
        return self(member, (Role.co_chair,), subject=f"co-chair-of-{member}")

    def ops(self) -> dict[str, str]:
        return self("RSO", (Role.ops,), subject="rso-operations")


class _TestServer(uvicorn.Server):
    """Runs inside the test's event loop and leaves signal handling to pytest."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(app: Any, port: int, **config: Any) -> AsyncIterator[None]:
    """Serve an ASGI app on a real socket (for clients that stream, e.g. server-sent events)."""
    server = _TestServer(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", **config
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield
    finally:
        server.should_exit = True
        await task


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 20.0, interval: float = 0.05
) -> None:
    """Poll an async condition; the deadline only bounds a hang, it asserts no speed."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def read_topic(
    settings: CommonSettings,
    topic: TopicSpec,
    *,
    expected: int,
    subject: str | None = None,
    timeout: float = 20.0,
) -> list[CloudEvent]:
    """Every record of a topic from offset 0 (no group), decoded as CloudEvents.

    With `subject`, only the events about that aggregate. Reads until `expected`
    are there, then a little longer, so that an unexpected extra event is seen too.
    """
    name = topic.qualified(settings.kafka_topic_prefix)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        fetch_max_wait_ms=10,
    )
    await consumer.start()
    events: list[CloudEvent] = []
    try:
        partitions = [TopicPartition(name, p) for p in range(topic.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + timeout
        while len(events) < expected and time.monotonic() < deadline:
            events += _decoded(await consumer.getmany(timeout_ms=200), subject)
        events += _decoded(await consumer.getmany(timeout_ms=300), subject)
    finally:
        await consumer.stop()
    return events


def _decoded(batches: dict[TopicPartition, list[Any]], subject: str | None) -> list[CloudEvent]:
    events = [
        CloudEvent.from_kafka(record.headers, record.value)
        for records in batches.values()
        for record in records
    ]
    return [event for event in events if subject is None or event.subject == subject]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In the PostgreSQL pass, run only the tests that use a database or the broker.

    Module-scoped service fixtures reach the database through `kafka_bootstrap` too,
    so either fixture in a test's closure selects it. Browser tests stay out: they ran in
    the first pass, and the pages' queries run here through the dashboard's HTTP tests.
    """
    if not os.environ.get("BALI_TEST_DATABASE_ONLY"):
        return
    selected: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        closure = set(getattr(item, "fixturenames", ()))
        uses_database = bool(closure & {"databases", "kafka_bootstrap"})
        uses_database = uses_database and item.get_closest_marker("browser") is None
        (selected if uses_database else deselected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("postgres") and postgres_url() is None:
        pytest.skip(f"needs PostgreSQL: set {POSTGRES_ENV} (CI does)")
