"""The developer's side of the schema migrations: run every service's, write a new revision."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory
from bali_common.migrations import alembic_config, database_settings, migration_engine, upgrade

Say = Callable[[str, str], None]


def migrations_of(service: str) -> Path:
    """Where `bali_<service>` keeps its Alembic history, found without importing it."""
    spec = importlib.util.find_spec(f"bali_{service}")
    locations = spec.submodule_search_locations if spec is not None else None
    if not locations:
        raise LookupError(f"no package bali_{service}")
    directory = Path(next(iter(locations))) / "migrations"
    if not (directory / "env.py").is_file():
        raise LookupError(f"bali_{service} has no migrations")
    return directory


async def migrate_services(services: Sequence[str], data_dir: Path, say: Say) -> bool:
    """Bring each service's database to its head, as `python -m bali_<name> migrate` does
    (the same `bali_common.migrations.upgrade`, in this one process: one start-up, not four).
    The databases are where the services will look: `BALI_*` variables, SQLite in `data_dir`."""
    succeeded = True
    for service in services:
        settings = database_settings(service).model_copy(update={"data_dir": data_dir})
        try:
            outcome = await upgrade(
                settings.resolved_database_url(), migrations_of(service), quiet=True
            )
        except Exception as error:
            say(service, f"cannot migrate: {error}")
            succeeded = False
            continue
        say(service, outcome.describe(service))
    return succeeded


def new_revision(service: str, message: str, *, directory: Path | None = None) -> Path:
    """Autogenerate the next revision of `service` (into `directory`, by default its own
    history): its models compared with a scratch SQLite database brought to the current head,
    the file numbered, formatted and linted."""
    directory = directory or migrations_of(service)
    script = ScriptDirectory.from_config(alembic_config(directory))
    numbers = [int(s.revision) for s in script.walk_revisions() if s.revision.isdigit()]
    revision = f"{max(numbers, default=0) + 1:04d}"
    with tempfile.TemporaryDirectory(prefix="bali-migration-") as scratch:
        url = f"sqlite+aiosqlite:///{Path(scratch) / f'{service}.db'}"
        written = asyncio.run(_autogenerate(url, directory, message, revision))
    # Formatted before the check, so that the check reports only what needs a person.
    ruff = [sys.executable, "-m", "ruff"]
    subprocess.run([*ruff, "format", "--quiet", str(written)], check=True)
    subprocess.run([*ruff, "check", "--fix", "--quiet", str(written)], check=False)
    subprocess.run([*ruff, "format", "--quiet", str(written)], check=True)
    return written


async def _autogenerate(url: str, directory: Path, message: str, revision: str) -> Path:
    await upgrade(url, directory, quiet=True)
    engine = migration_engine(url)
    try:
        async with engine.connect() as connection:
            script = await connection.run_sync(
                lambda sync: command.revision(
                    alembic_config(directory, sync),
                    message=message,
                    autogenerate=True,
                    rev_id=revision,
                )
            )
    finally:
        await engine.dispose()
    if script is None or isinstance(script, list):
        raise RuntimeError(f"Alembic wrote no single revision: {script!r}")
    return Path(script.path)
