"""`bali migrate` and `bali migration new` as a developer runs them, on SQLite files."""

from __future__ import annotations

import ast
import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bali_common.schema_version import heads_of
from bali_devkit.cli import app
from bali_devkit.migrations import new_revision
from migrations_support import (
    SERVICES,
    create_release_schema,
    differences,
    history,
    load_rows,
    on,
    release_rows,
    tables,
)
from sqlalchemy import text
from typer.testing import CliRunner

runner = CliRunner()
BALI = Path(sys.executable).parent / "bali"


async def bali(*arguments: str) -> subprocess.CompletedProcess[str]:
    """The `bali` command in a process of its own; no BALI_DATABASE_URL leaks in."""
    env = {k: v for k, v in os.environ.items() if k != "BALI_DATABASE_URL"}
    return await asyncio.to_thread(
        subprocess.run, [str(BALI), *arguments], capture_output=True, text=True, env=env
    )


def sqlite_url(data_dir: Path, service: str) -> str:
    return f"sqlite+aiosqlite:///{data_dir / f'{service}.db'}"


async def test_a_data_dir_of_release_0_1_0_is_adopted_and_upgraded(tmp_path: Path) -> None:
    """What `make up` does first on a `.bali/` the release before created with create_all."""
    for service in SERVICES:
        url = sqlite_url(tmp_path, service)
        await on(url, lambda connection, s=service: create_release_schema(connection, s))
        await on(url, lambda connection, s=service: load_rows(connection, release_rows(s)))

    result = await bali("migrate", "--data-dir", str(tmp_path))

    assert result.returncode == 0, result.stdout + result.stderr
    for service in SERVICES:
        head = heads_of(history(service))[0]
        assert f"{service} database: revision 0001 -> {head} (adopted" in result.stdout
        assert await differences(sqlite_url(tmp_path, service), service) == []
    members = await on(
        sqlite_url(tmp_path, "activities"),
        lambda connection: connection.execute(text("SELECT count(*) FROM members")).scalar_one(),
    )
    assert members == len(release_rows("activities")["members"])
    again = await bali("migrate", "--data-dir", str(tmp_path))
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("already: nothing to do") == len(SERVICES)


async def test_a_database_of_unknown_tables_is_refused_and_left_alone(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path, "reporting")
    await on(url, lambda connection: connection.execute(text("CREATE TABLE notes (id int)")))

    result = await bali("migrate", "--data-dir", str(tmp_path), "--service", "reporting")

    assert result.returncode == 1
    assert "holds tables but no schema version" in result.stdout
    assert "table notes is extra" in result.stdout
    assert await on(url, tables) == {"notes"}


def test_migrate_wants_a_service_for_a_database_url() -> None:
    result = runner.invoke(
        app, ["migrate"], env={"BALI_DATABASE_URL": "postgresql+asyncpg://db/activities"}
    )
    assert result.exit_code == 2
    assert "--service" in result.output


def test_migration_new_writes_the_next_numbered_revision(tmp_path: Path) -> None:
    copy = tmp_path / "migrations"
    shutil.copytree(history("reporting"), copy)
    (head,) = heads_of(copy)

    written = new_revision("reporting", "Tallies keep their first event", directory=copy)

    assert written.parent == copy / "versions"
    assert written.name == f"{int(head) + 1:04d}_tallies_keep_their_first_event.py"
    module = ast.parse(written.read_text())
    assert (ast.get_docstring(module) or "").startswith(
        "Tallies keep their first event\n\nOnline: ?"
    )
    assigned = {
        node.targets[0].id if isinstance(node, ast.Assign) else node.target.id: node.value
        for node in module.body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        and node.value is not None
        and isinstance(node.targets[0] if isinstance(node, ast.Assign) else node.target, ast.Name)
    }
    assert ast.literal_eval(assigned["revision"]) == f"{int(head) + 1:04d}"
    assert ast.literal_eval(assigned["down_revision"]) == head
    assert heads_of(copy) == (f"{int(head) + 1:04d}",)
