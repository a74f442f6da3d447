"""What the migration tests share: each service's history and models, databases to build."""

from __future__ import annotations

import base64
import importlib
import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar
from uuid import uuid4

import pytest
from bali_activities.settings import ActivitiesSettings
from bali_common.migrations import metadata_of, migration_engine, schema_differences
from bali_common.runtime import PLUMBING_MODELS
from bali_common.settings import CommonSettings
from bali_consultation.settings import ConsultationSettings
from bali_devkit.testing.plugin import DatabaseFactory
from bali_notifications.settings import NotificationsSettings
from bali_reporting.settings import ReportingSettings
from fastapi import FastAPI
from sqlalchemy import (
    Connection,
    Date,
    DateTime,
    LargeBinary,
    MetaData,
    func,
    insert,
    select,
    text,
)
from sqlmodel import SQLModel

SETTINGS: dict[str, type[CommonSettings]] = {
    "activities": ActivitiesSettings,
    "consultation": ConsultationSettings,
    "notifications": NotificationsSettings,
    "reporting": ReportingSettings,
}
SERVICES = tuple(SETTINGS)
#: What release 0.1.0 made: its create_all statements and rows its services wrote (capture.py).
RELEASE = Path(__file__).parent / "release_0_1_0"

#: SQLite always; PostgreSQL where BALI_TEST_POSTGRES_URL names a server (CI's second pass).
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]

T = TypeVar("T")


def history(service: str) -> Path:
    directory = importlib.import_module(f"bali_{service}.migrations").DIRECTORY
    assert isinstance(directory, Path)
    return directory


def create_app(service: str, settings: CommonSettings) -> FastAPI:
    app = importlib.import_module(f"bali_{service}.app").create_app(settings)
    assert isinstance(app, FastAPI)
    return app


def models(service: str) -> list[type[SQLModel]]:
    """Every table the service's database holds: the plumbing and the service's own."""
    return [*PLUMBING_MODELS, *importlib.import_module(f"bali_{service}.app").MODELS]


async def empty_database(
    backend: str, databases: DatabaseFactory, directory: Path, service: str
) -> str:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{directory / f'{service}-{uuid4().hex[:6]}.db'}"
    url = await databases.create(service, migrated=False)
    assert url.startswith("postgresql"), "the postgres marker guarantees a server"
    return url


async def on(url: str, work: Callable[[Connection], T]) -> T:
    """Run `work` on a connection of its own, and commit."""
    engine = migration_engine(url)
    try:
        async with engine.connect() as connection:
            result = await connection.run_sync(work)
            await connection.commit()
            return result
    finally:
        await engine.dispose()


async def differences(url: str, service: str) -> list[Any]:
    return await on(url, lambda c: schema_differences(c, metadata_of(models(service))))


def tables(connection: Connection) -> set[str]:
    metadata = MetaData()
    metadata.reflect(connection)
    return set(metadata.tables)


def triggers(connection: Connection) -> set[tuple[str, ...]]:
    """The triggers (and on PostgreSQL the functions they call), as the database states them."""
    if connection.dialect.name == "sqlite":
        rows = connection.exec_driver_sql(
            "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'"
        )
        return {tuple(row) for row in rows}
    found = connection.exec_driver_sql(
        "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal"
    )
    functions = connection.exec_driver_sql(
        "SELECT proname, prosrc FROM pg_proc JOIN pg_namespace n ON n.oid = pronamespace "
        "WHERE nspname = 'public'"
    )
    return {tuple(row) for row in found} | {("function", *row) for row in functions}


def indexes(connection: Connection) -> set[tuple[str, ...]]:
    """Every index as the database states it, down to a partial index's WHERE clause (which
    autogenerate does not compare)."""
    if connection.dialect.name == "sqlite":
        rows = connection.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        )
    else:
        rows = connection.exec_driver_sql(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version'"
        )
    return {tuple(row) for row in rows}


# --- release 0.1.0 ----------------------------------------------------------------------------


def release_statements(service: str, dialect: str) -> list[str]:
    """What release 0.1.0's create_all ran at the service's first start."""
    script = (RELEASE / f"{service}.{dialect}.sql").read_text()
    return [statement.strip() for statement in script.split(";\n\n") if statement.strip()]


def create_release_schema(connection: Connection, service: str) -> None:
    for statement in release_statements(service, connection.dialect.name):
        connection.exec_driver_sql(statement.removesuffix(";"))


def release_rows(service: str) -> dict[str, list[dict[str, Any]]]:
    path = RELEASE / f"{service}.json"
    if not path.exists():
        return {}
    rows: dict[str, list[dict[str, Any]]] = json.loads(path.read_text())
    return rows


def load_rows(connection: Connection, rows: dict[str, list[dict[str, Any]]]) -> None:
    """Insert rows as stored by release 0.1.0, into the tables the database has now."""
    metadata = MetaData()
    metadata.reflect(connection)
    for table in metadata.sorted_tables:
        chosen = rows.get(table.name, [])
        if not chosen:
            continue
        values = [
            {name: _stored(table.c[name].type, value) for name, value in row.items()}
            for row in chosen
        ]
        connection.execute(insert(table), values)
        if connection.dialect.name == "postgresql":
            # Rows came with their ids: each sequence must move past them, as it had.
            for column in _serial_columns(connection, table.name):
                highest = connection.execute(select(func.max(table.c[column]))).scalar_one()
                connection.execute(
                    text("SELECT setval(pg_get_serial_sequence(:table, :column), :value)"),
                    {"table": table.name, "column": column, "value": highest},
                )


def _serial_columns(connection: Connection, table: str) -> list[str]:
    rows = connection.execute(
        text(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = :table AND column_default LIKE 'nextval(%'"
        ),
        {"table": table},
    )
    return [row[0] for row in rows]


def _stored(kind: Any, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(kind, DateTime):
        moment = datetime.fromisoformat(value)
        # 0.1.0 stored UTC; SQLite handed it back without the zone.
        if kind.timezone and moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment
    if isinstance(kind, Date):
        return date.fromisoformat(value)
    if isinstance(kind, LargeBinary):
        return base64.b64decode(value)
    return value
