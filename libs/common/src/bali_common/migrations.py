"""Schema migrations of a service's database (Alembic): run, adopted, compared, the CLI."""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.autogenerate.api import AutogenContext
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, MetaData, event, inspect, text
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel

from bali_common.db import SCHEMA_LOCK_KEY, is_sqlite, table_of
from bali_common.schema_version import (
    MigrationError,
    check_at_head,
    current_revision,
    heads_of,
)
from bali_common.settings import DatabaseSettings

log = logging.getLogger(__name__)

#: Constraint names as PostgreSQL would choose them, so that both backends carry the same
#: names, and the databases the releases before migrations created on PostgreSQL (with
#: `create_all` and no convention) already have the names the migrations use.
NAMING_CONVENTION: dict[str, str] = {
    "pk": "%(table_name)s_pkey",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "fk": "%(table_name)s_%(column_0_N_name)s_fkey",
    "ix": "ix_%(column_0_label)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}

#: The schema that release 0.1.0, the last without migrations, built with `create_all`: a
#: database holding exactly those tables and no version is adopted at this revision.
RELEASE_BEFORE_MIGRATIONS = "0001"

#: How every service's migrations are configured; `schema_differences` compares the same way.
_CONTEXT_OPTIONS: dict[str, Any] = {
    "render_as_batch": True,  # SQLite alters a table by copying it: Alembic's batch mode
    "compare_type": True,
    "compare_server_default": True,
    "transaction_per_migration": True,
}
_CONNECTION_KEY = "connection"


def _context_options(dialect: str) -> dict[str, Any]:
    """`_CONTEXT_OPTIONS` for a database of `dialect`, with `_for_this_dialect` bound to it."""

    def include_object(
        obj: Any, _name: str | None, type_: str, reflected: bool, _compare_to: Any
    ) -> bool:
        return _for_this_dialect(obj, type_, reflected, dialect)

    return {**_CONTEXT_OPTIONS, "include_object": include_object}


def _for_this_dialect(obj: Any, type_: str, reflected: bool, dialect: str) -> bool:
    """Alembic ignores `ddl_if`: an index the models declare for another database only (a
    PostgreSQL GIN index) is not expected in this one, so its absence is no difference."""
    condition = getattr(obj, "_ddl_if", None) if type_ == "index" and not reflected else None
    if condition is None or condition.dialect is None:
        return True
    dialects = (condition.dialect,) if isinstance(condition.dialect, str) else condition.dialect
    return dialect in dialects


@dataclass(frozen=True)
class Outcome:
    """What `upgrade` or `downgrade` did: the revisions before and after, and any adoption."""

    before: str | None
    after: str | None
    adopted: bool = False

    def describe(self, service: str) -> str:
        if self.before == self.after and not self.adopted:
            return f"{service} database is at {self.after or 'base'} already: nothing to do"
        adopted = " (adopted from release 0.1.0)" if self.adopted else ""
        return (
            f"{service} database: revision {self.before or 'none'} -> {self.after or 'base'}"
            f"{adopted}"
        )


def metadata_of(models: Sequence[type[SQLModel]]) -> MetaData:
    """The tables of one service database under the naming convention: what its migrations
    build, and what autogenerate compares a database with."""
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    for model in models:
        table = table_of(model)
        copy = table.to_metadata(metadata)
        # `to_metadata` drops an index's `ddl_if` (a PostgreSQL-only index): keep it.
        conditions = {index.name: index._ddl_if for index in table.indexes if index._ddl_if}
        for index in copy.indexes:
            if index.name in conditions:
                index._ddl_if = conditions[index.name]
    return metadata


def alembic_config(directory: Path, connection: Connection | None = None) -> Config:
    """The configuration of a service's history (no alembic.ini: everything is here)."""
    config = Config()
    config.set_main_option("script_location", str(directory))
    # Revisions are numbered 0001, 0002...: their files read in order and name the change.
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.set_main_option("truncate_slug_length", "48")
    config.set_main_option("path_separator", "os")
    config.attributes[_CONNECTION_KEY] = connection
    return config


def run_environment(models: Sequence[type[SQLModel]]) -> None:
    """The body of every service's `env.py`: run on the connection its caller opened.

    The callers (`upgrade`, `downgrade`, `bali migration new`) open the connection
    themselves, so that the lock, the adoption of older databases and SQLite's transaction
    handling are the same everywhere.
    """
    from alembic import context

    connection = context.config.attributes.get(_CONNECTION_KEY)
    if context.is_offline_mode() or connection is None:
        raise MigrationError(
            "run the migrations through `python -m bali_<service> migrate` or `bali migrate`"
        )
    context.configure(
        connection=connection,
        target_metadata=metadata_of(models),
        render_item=_render_item,
        **_context_options(connection.dialect.name),
    )
    with context.begin_transaction():
        context.run_migrations()


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> Literal[False]:
    """SQLModel's column types render under their module's name: import it in the revision."""
    module = type(obj).__module__
    if type_ == "type" and module.startswith("sqlmodel."):
        autogen_context.imports.add(f"import {module}")
    return False


def schema_differences(connection: Connection, metadata: MetaData) -> list[Any]:
    """What autogenerate would change to make the database match `metadata` (usually
    `metadata_of` a service's models): none when the migrations build what they declare."""
    context = MigrationContext.configure(connection, opts=_context_options(connection.dialect.name))
    differences: list[Any] = compare_metadata(context, metadata)
    return differences


# --- running them -----------------------------------------------------------------------------


def migration_engine(url: str) -> AsyncEngine:
    """An engine for migrations only: one connection at a time, and on SQLite a real
    transaction around DDL (the driver opens one only before DML, so a failed migration
    would otherwise leave half its statements behind)."""
    if not is_sqlite(url):
        return create_async_engine(url, poolclass=NullPool)
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, poolclass=NullPool, connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _driver_leaves_transactions_to_us(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")

    return engine


@contextmanager
def _quiet_alembic(quiet: bool) -> Iterator[None]:
    """Alembic logs each step at INFO: wanted from the command line, noise in test setup."""
    logger = logging.getLogger("alembic")
    level = logger.level
    if quiet:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


async def upgrade(
    url: str, directory: Path, revision: str = "head", *, quiet: bool = False
) -> Outcome:
    """Bring the database to `revision`, one process at a time (an advisory lock on
    PostgreSQL). A database that release 0.1.0 created, without a version, is adopted first."""
    engine = migration_engine(url)
    try:
        async with engine.connect() as connection:
            await _lock(connection)
            before = await connection.run_sync(current_revision)
            adopted = before is None and await connection.run_sync(_adopt_unversioned, directory)
            await connection.commit()
            with _quiet_alembic(quiet):
                await connection.run_sync(
                    lambda sync: command.upgrade(alembic_config(directory, sync), revision)
                )
            await connection.commit()
            await _check_foreign_keys(connection)
            after = await connection.run_sync(current_revision)
    finally:
        await engine.dispose()
    return Outcome(
        before=RELEASE_BEFORE_MIGRATIONS if adopted else before, after=after, adopted=adopted
    )


async def downgrade(url: str, directory: Path, revision: str, *, quiet: bool = False) -> Outcome:
    """Step the database back to `revision` (`base`: no table left)."""
    engine = migration_engine(url)
    try:
        async with engine.connect() as connection:
            await _lock(connection)
            before = await connection.run_sync(current_revision)
            await connection.commit()
            with _quiet_alembic(quiet):
                await connection.run_sync(
                    lambda sync: command.downgrade(alembic_config(directory, sync), revision)
                )
            await connection.commit()
            after = await connection.run_sync(current_revision)
    finally:
        await engine.dispose()
    return Outcome(before=before, after=after)


async def _lock(connection: AsyncConnection) -> None:
    """One migrating process per database: Jobs, init containers and replicas may race.

    A session lock, so that it spans the several transactions of a migration; it goes with
    the connection, which the NullPool of `migration_engine` really closes.
    """
    if connection.dialect.name == "postgresql":
        await connection.execute(text(f"SELECT pg_advisory_lock({SCHEMA_LOCK_KEY})"))
        await connection.commit()


async def _check_foreign_keys(connection: AsyncConnection) -> None:
    """SQLite checks no foreign key while a batch operation copies a table: check after."""
    if connection.dialect.name != "sqlite":
        return
    violations = (await connection.execute(text("PRAGMA foreign_key_check"))).all()
    await connection.commit()
    if violations:
        raise MigrationError(f"the migrated database breaks foreign keys: {violations[:5]}")


# --- databases created before migrations ------------------------------------------------------


#: Per table: columns (name, nullable), primary key, indexes, unique constraints, foreign keys.
TableShape = tuple[frozenset[Any], tuple[str, ...], frozenset[Any], frozenset[Any], frozenset[Any]]


def _adopt_unversioned(connection: Connection, directory: Path) -> bool:
    """Stamp a database without a version at `RELEASE_BEFORE_MIGRATIONS` when its tables are
    exactly that revision's; an empty one is left for the upgrade to build from scratch."""
    found = _shape(connection)
    if not found:
        return False
    expected = _shape_at(directory, RELEASE_BEFORE_MIGRATIONS)
    if found != expected:
        raise MigrationError(
            "the database holds tables but no schema version, and they are not the tables of "
            f"release 0.1.0 (revision {RELEASE_BEFORE_MIGRATIONS}), so no migration can "
            f"start from them: {_describe(found, expected)}. A development database under "
            ".bali/ can simply be removed; anything else needs a look before it is migrated"
        )
    command.stamp(alembic_config(directory, connection), RELEASE_BEFORE_MIGRATIONS)
    log.info("adopted a database of release 0.1.0 at revision %s", RELEASE_BEFORE_MIGRATIONS)
    return True


def _shape(connection: Connection) -> dict[str, TableShape]:
    """What the tables are, in terms both backends reflect alike (names, not types)."""
    inspector = inspect(connection)
    shapes: dict[str, TableShape] = {}
    for table in inspector.get_table_names():
        if table == "alembic_version":
            continue
        columns = frozenset((c["name"], c["nullable"]) for c in inspector.get_columns(table))
        primary_key = tuple(inspector.get_pk_constraint(table)["constrained_columns"])
        indexes = frozenset(
            (index["name"], tuple(index["column_names"]), bool(index["unique"]))
            for index in inspector.get_indexes(table)
            if not index.get("duplicates_constraint")
        )
        uniques = frozenset(
            tuple(unique["column_names"]) for unique in inspector.get_unique_constraints(table)
        )
        foreign_keys = frozenset(
            (tuple(fk["constrained_columns"]), fk["referred_table"], tuple(fk["referred_columns"]))
            for fk in inspector.get_foreign_keys(table)
        )
        shapes[table] = (columns, primary_key, indexes, uniques, foreign_keys)
    return shapes


def _shape_at(directory: Path, revision: str) -> dict[str, TableShape]:
    """The tables `revision` builds, built in a scratch in-memory SQLite database."""
    scratch = create_sync_engine("sqlite://")
    try:
        with scratch.connect() as connection, _quiet_alembic(True):
            command.upgrade(alembic_config(directory, connection), revision)
            return _shape(connection)
    finally:
        scratch.dispose()


def _describe(found: dict[str, TableShape], expected: dict[str, TableShape]) -> str:
    parts = [f"table {name} is extra" for name in sorted(set(found) - set(expected))]
    parts += [f"table {name} is missing" for name in sorted(set(expected) - set(found))]
    aspects = ("columns", "primary key", "indexes", "unique constraints", "foreign keys")
    for name in sorted(set(found) & set(expected)):
        for aspect, have, want in zip(aspects, found[name], expected[name], strict=True):
            if have != want:
                parts.append(f"{name} differs in its {aspect}")
    return "; ".join(parts)


# --- the command line of every image ----------------------------------------------------------


def database_settings(service: str) -> DatabaseSettings:
    """The service's database as the service finds it: `BALI_*` variables, its own name."""

    class ServiceDatabase(DatabaseSettings):
        service_name: str = service

    return ServiceDatabase()


def main(service: str, directory: Path, argv: Sequence[str] | None = None) -> int:
    """`python -m bali_<service> migrate`: what images run before the service starts."""
    parser = argparse.ArgumentParser(
        prog=f"python -m bali_{service} migrate",
        description=f"Bring the {service} database to the schema of this release (Alembic "
        "migrations, one process at a time), or check that it is there.",
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument(
        "--check",
        action="store_true",
        help="change nothing; exit 0 when the database is at this release's head, 1 otherwise",
    )
    action.add_argument(
        "--downgrade",
        metavar="REVISION",
        help="step back to REVISION (the previous release's head; `base` drops every table)",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="with --check: keep checking for this long (waiting for a migration Job)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"%(levelname)s [{service}] %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_steps_only)
    url = database_settings(service).resolved_database_url()
    try:
        if args.check:
            return asyncio.run(_check(url, directory, service, wait=args.wait))
        if args.downgrade:
            outcome = asyncio.run(downgrade(url, directory, args.downgrade))
        else:
            outcome = asyncio.run(upgrade(url, directory))
    except MigrationError as error:
        log.error("%s", error)
        return 1
    log.info("%s", outcome.describe(service))
    return 0


def _steps_only(record: logging.LogRecord) -> bool:
    """Alembic notes the backend's traits at every connection: noise next to its steps."""
    return not record.getMessage().startswith(("Context impl", "Will assume"))


async def _check(url: str, directory: Path, service: str, *, wait: float) -> int:
    deadline = time.monotonic() + wait
    engine = migration_engine(url)
    try:
        while True:
            try:
                await check_at_head(engine, directory, service)
                log.info("%s database is at %s", service, ",".join(heads_of(directory)))
                return 0
            except Exception as error:  # not migrated yet, or not reachable yet
                if time.monotonic() >= deadline:
                    log.error("%s", error)
                    return 1
            await asyncio.sleep(2.0)
    finally:
        await engine.dispose()
