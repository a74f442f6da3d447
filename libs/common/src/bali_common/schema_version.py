"""The check every service makes at start: is its database at the head of its migrations?

Kept apart from `bali_common.migrations` so that a starting service does not import Alembic
(most of a second on a busy machine, at every start and restart): the revisions are read from
the files themselves, and tests/migrations checks that Alembic reads the same history.
"""

from __future__ import annotations

import ast
from pathlib import Path

from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine


class MigrationError(RuntimeError):
    """The database cannot be brought to, or is not at, the schema this release needs."""


def revisions_of(directory: Path) -> dict[str, tuple[str, ...]]:
    """Each revision of a history and the revisions it follows, from `versions/*.py`."""
    found: dict[str, tuple[str, ...]] = {}
    for path in sorted((directory / "versions").glob("*.py")):
        if path.name == "__init__.py":
            continue
        values: dict[str, object] = {}
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                target, value = node.target, node.value
            else:
                continue
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                values[target.id] = ast.literal_eval(value)
        revision, follows = values.get("revision"), values.get("down_revision")
        if not isinstance(revision, str):
            raise MigrationError(f"{path} names no revision")
        if follows is None:
            parents: tuple[object, ...] = ()
        elif isinstance(follows, tuple | list):
            parents = tuple(follows)
        else:
            parents = (follows,)
        found[revision] = tuple(str(parent) for parent in parents)
    return found


def heads_of(directory: Path) -> tuple[str, ...]:
    """The revisions no other follows: one, in a history kept in one line."""
    revisions = revisions_of(directory)
    followed = {parent for parents in revisions.values() for parent in parents}
    return tuple(sorted(set(revisions) - followed))


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (comma-joined if several), None without a version."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    rows = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
    return ",".join(sorted(rows)) or None


async def check_at_head(engine: AsyncEngine, directory: Path, service: str) -> None:
    """Raise `MigrationError` unless the database is at the head of `directory`: a service
    never changes its schema itself, and never runs on one it was not written for."""
    async with engine.connect() as connection:
        current = await connection.run_sync(current_revision)
    wanted = ",".join(heads_of(directory))
    if current == wanted:
        return
    run = f"run `python -m bali_{service} migrate` (or `bali migrate` on the embedded default)"
    if current is None:
        raise MigrationError(f"the {service} database has no schema version: {run} first")
    if set(current.split(",")) <= set(revisions_of(directory)):
        raise MigrationError(
            f"the {service} database is at revision {current}, this release needs {wanted}: "
            f"{run} first"
        )
    raise MigrationError(
        f"the {service} database is at revision {current}, which this release does not know "
        f"(it needs {wanted}): a later release migrated it. Run that release, or step the "
        f"database back with that release's `python -m bali_{service} migrate --downgrade "
        f"{wanted}`"
    )
