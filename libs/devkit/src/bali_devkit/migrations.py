"""The developer's side of the schema migrations: run every service's, write a new revision."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory
from bali_common.migrations import alembic_config, migration_engine, upgrade

from bali_devkit.supervisor import python_module

SERVICES = ("activities", "consultation", "notifications", "reporting")

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


async def migrate_services(services: Sequence[str], env: Mapping[str, str], say: Say) -> bool:
    """`python -m bali_<name> migrate` for each service, at once (each its own database), as
    the images run it; every line of output is shown under the service's name."""
    results = await asyncio.gather(*(_migrate(name, env, say) for name in services))
    return all(results)


async def _migrate(service: str, env: Mapping[str, str], say: Say) -> bool:
    process = await asyncio.create_subprocess_exec(
        *python_module(f"bali_{service}"),
        "migrate",
        env=dict(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    async for line in process.stdout:
        say(service, line.decode(errors="replace").rstrip())
    return await process.wait() == 0


def new_revision(service: str, message: str) -> Path:
    """Autogenerate the next revision of `service`: its models compared with a scratch SQLite
    database brought to the current head, the file numbered, formatted and linted."""
    directory = migrations_of(service)
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


def service_env(data_dir: Path) -> dict[str, str]:
    """The environment a service process of `bali up` or `bali migrate` gets."""
    return {**os.environ, "BALI_DATA_DIR": str(data_dir)}
