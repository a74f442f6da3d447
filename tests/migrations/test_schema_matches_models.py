"""The migrations build exactly what the models declare, on SQLite and PostgreSQL, and undo it.

A model changed without a migration fails `test_upgraded_from_empty_is_what_the_models_declare`:
the fix is `bali migration new --service <name> -m "..."` (README, "Adding a migration").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from bali_common.db import create_engine, create_tables
from bali_common.migrations import (
    downgrade,
    metadata_of,
    schema_differences,
    upgrade,
)
from bali_common.schema_version import MigrationError, check_at_head, heads_of
from bali_devkit.testing.plugin import DatabaseFactory, SettingsFactory
from migrations_support import (
    BACKENDS,
    SERVICES,
    SETTINGS,
    create_app,
    differences,
    empty_database,
    history,
    indexes,
    models,
    on,
    tables,
    triggers,
)
from sqlalchemy import Column, Connection, Integer, text


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("service", SERVICES)
async def test_upgraded_from_empty_is_what_the_models_declare(
    service: str, backend: str, databases: DatabaseFactory, tmp_path: Path
) -> None:
    url = await empty_database(backend, databases, tmp_path, service)
    outcome = await upgrade(url, history(service), quiet=True)
    assert (outcome.before, outcome.after) == (None, heads_of(history(service))[0])
    assert await differences(url, service) == []


@pytest.mark.parametrize("backend", BACKENDS)
async def test_the_comparison_sees_a_model_change_without_its_migration(
    backend: str, databases: DatabaseFactory, tmp_path: Path
) -> None:
    url = await empty_database(backend, databases, tmp_path, "activities")
    await upgrade(url, history("activities"), quiet=True)
    changed = metadata_of(models("activities"))
    changed.tables["outbox_messages"].append_column(Column("priority", Integer, nullable=True))
    changed.tables["inbox_entries"].indexes.clear()
    found = await on(url, lambda connection: schema_differences(connection, changed))
    kinds = {difference[0] if isinstance(difference, tuple) else "" for difference in found}
    assert {"add_column", "remove_index"} <= kinds, found


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("service", SERVICES)
async def test_triggers_and_indexes_are_those_create_all_makes(
    service: str, backend: str, databases: DatabaseFactory, tmp_path: Path
) -> None:
    """The audit trail's append-only triggers come from DDL events on create_all, and the
    WHERE of a partial index is not compared by autogenerate: the migrations must make the
    same ones as the models do."""
    migrated = await empty_database(backend, databases, tmp_path, service)
    await upgrade(migrated, history(service), quiet=True)
    created = await empty_database(backend, databases, tmp_path, f"{service}-create-all")
    engine = create_engine(created)
    try:
        await create_tables(engine, models(service))
    finally:
        await engine.dispose()
    assert await on(migrated, triggers) == await on(created, triggers)
    assert await on(migrated, indexes) == await on(created, indexes)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("service", SERVICES)
async def test_downgrade_to_base_removes_everything_and_upgrades_again(
    service: str, backend: str, databases: DatabaseFactory, tmp_path: Path
) -> None:
    url = await empty_database(backend, databases, tmp_path, service)
    await upgrade(url, history(service), quiet=True)
    outcome = await downgrade(url, history(service), "base", quiet=True)
    assert outcome.after is None
    assert await on(url, tables) == {"alembic_version"}
    assert await on(url, triggers) == set()
    await upgrade(url, history(service), quiet=True)
    assert await differences(url, service) == []


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_service_refuses_a_database_that_is_not_at_its_head(
    backend: str,
    databases: DatabaseFactory,
    make_settings: SettingsFactory,
    tmp_path: Path,
) -> None:
    url = await empty_database(backend, databases, tmp_path, "reporting")
    directory = history("reporting")
    (head,) = heads_of(directory)
    settings = await make_settings(SETTINGS["reporting"], database_url=url)

    async def refusal() -> str:
        app = create_app("reporting", settings)
        with pytest.raises(MigrationError) as refused:
            async with app.router.lifespan_context(app):
                pass
        return str(refused.value)

    assert "has no schema version" in await refusal()
    assert "python -m bali_reporting migrate" in await refusal()
    assert await on(url, tables) == set(), "the service created nothing"

    await upgrade(url, directory, "0001", quiet=True)
    assert f"at revision 0001, this release needs {head}" in await refusal()

    await upgrade(url, directory, quiet=True)

    def stamp(revision: str) -> Callable[[Connection], object]:
        statement = text("UPDATE alembic_version SET version_num = :revision")
        return lambda connection: connection.execute(statement, {"revision": revision})

    await on(url, stamp("9999"))
    assert "which this release does not know" in await refusal()

    await on(url, stamp(head))
    engine = create_engine(url)
    try:
        await check_at_head(engine, directory, "reporting")
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_several_migrations_of_one_database_at_once_wait_for_each_other(
    databases: DatabaseFactory,
) -> None:
    """Jobs and replicas may start together: the advisory lock lets one migrate at a time,
    and the others then find the database at head."""
    url = await databases.create("notifications", migrated=False)
    directory = history("notifications")
    outcomes = await asyncio.gather(*(upgrade(url, directory, quiet=True) for _ in range(4)))
    (head,) = heads_of(directory)
    assert sorted(o.before or "" for o in outcomes) == ["", head, head, head]
    assert {o.after for o in outcomes} == {head}
    assert await differences(url, "notifications") == []
