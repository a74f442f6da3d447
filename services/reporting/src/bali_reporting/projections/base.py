"""What projections are built from: batch apply, version-guarded heads and additive tallies.

Every projection applies a batch of events so that the result equals applying them
one at a time in any order the broker may deliver them:

- A snapshot (activity, alert, member) carries a version; a head row keeps the newest
  version seen per aggregate, and an older or equal one changes nothing.
- Counts and sums live in tally tables keyed by their dimensions. An aggregate's
  share of the tallies (its "contribution") is kept on its head, so a newer snapshot
  subtracts the old share and adds the new one. Sums are integers (thousandths for
  quantities), so the order of additions cannot change a total, and rows that drop to
  zero are deleted, so a table never remembers what was once counted.

Writes are statements over whole batches (`INSERT ... ON CONFLICT`), never one ORM
object per row, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, TypeVarTuple

from bali_common.events.envelope import CloudEvent
from bali_common.events.registry import EventPayload
from sqlalchemy import (
    BigInteger,
    Column,
    CursorResult,
    Executable,
    Row,
    Select,
    Table,
    delete,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert
from sqlmodel import Field
from sqlmodel.ext.asyncio.session import AsyncSession

#: One event as a projection receives it.
Applied = tuple[CloudEvent, EventPayload]
BatchApply = Callable[[AsyncSession, Sequence[Applied]], Awaitable[None]]
Key = tuple[Any, ...]
#: Tally name -> key -> measures (the first measure is always the count `n`).
Contribution = dict[str, dict[Key, tuple[int, ...]]]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
_CHUNK_ROWS = 500


@dataclass(frozen=True)
class Projection:
    """One read model: its tables, the payload classes it takes and its batch apply.

    `apply` over a batch equals applying each event of it alone, in any order."""

    name: str
    models: tuple[type[Any], ...]
    takes: tuple[type[EventPayload], ...]
    apply: BatchApply

    def accepts(self, payload: EventPayload) -> bool:
        return isinstance(payload, self.takes)


def chunked(rows: Sequence[T], size: int = _CHUNK_ROWS) -> Iterator[Sequence[T]]:
    """Statements stay under the bound-parameter limits of SQLite and asyncpg."""
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def insert_for(session: AsyncSession, table: Table) -> Insert:
    """`INSERT` with the dialect's `ON CONFLICT` support (SQLite or PostgreSQL)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


async def fetch(session: AsyncSession, query: Select[*Ts]) -> Sequence[Row[*Ts]]:
    """Rows of a column query, on the session's connection and transaction."""
    connection = await session.connection()
    return (await connection.execute(query)).all()


async def execute_many(
    session: AsyncSession, statement: Executable, rows: Sequence[Mapping[str, Any]]
) -> CursorResult[Any]:
    """One statement for many rows (executemany; batched VALUES when it returns rows): it is
    compiled once and cached, however many rows the batch has."""
    connection = await session.connection()
    return await connection.execute(statement, list(rows))


def is_postgresql(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def milli(value: float | None) -> int:
    """Quantities as integer thousandths: sums then never depend on the order of additions."""
    return round(value * 1000) if value is not None else 0


def latest(items: Iterable[tuple[str, int, T]]) -> dict[str, tuple[int, T]]:
    """Per aggregate id, the item with the highest version (the first of equal versions)."""
    newest: dict[str, tuple[int, T]] = {}
    for aggregate_id, version, item in items:
        held = newest.get(aggregate_id)
        if held is None or held[0] < version:
            newest[aggregate_id] = (version, item)
    return newest


async def advance(
    session: AsyncSession,
    head: Table,
    rows: Mapping[str, dict[str, Any]],
    *,
    keep: Sequence[str] = (),
) -> dict[str, dict[str, Any] | None]:
    """Store the rows whose `version` is newer than the head's; return, for each stored id,
    the columns `keep` of the row it replaced (None for a new aggregate).

    The upsert itself is guarded by the version and reports what it wrote, so two
    transactions racing on one aggregate cannot both replace it (PostgreSQL also locks
    the rows read).
    """
    if not rows:
        return {}
    id_column = head.primary_key.columns.values()[0]
    held: dict[str, dict[str, Any]] = {}
    for ids in chunked(sorted(rows)):
        query = select(id_column, head.c.version, *(head.c[name] for name in keep)).where(
            id_column.in_(ids)
        )
        if is_postgresql(session):
            query = query.with_for_update()
        for found in await fetch(session, query):
            held[found[0]] = dict(found._mapping)
    newer = [
        {id_column.name: aggregate_id, **values}
        for aggregate_id, values in sorted(rows.items())
        if aggregate_id not in held or held[aggregate_id]["version"] < values["version"]
    ]
    written: set[str] = set()
    if newer:
        statement = insert_for(session, head)
        columns = [name for name in newer[0] if name != id_column.name]
        statement = statement.on_conflict_do_update(  # type: ignore[attr-defined]
            index_elements=[id_column.name],
            set_={name: statement.excluded[name] for name in columns},  # type: ignore[attr-defined]
            where=head.c.version < statement.excluded.version,  # type: ignore[attr-defined]
        ).returning(id_column)
        written.update((await execute_many(session, statement, newer)).scalars())
    return {
        aggregate_id: (
            {name: held[aggregate_id][name] for name in keep} if aggregate_id in held else None
        )
        for aggregate_id in written
    }


@dataclass(frozen=True)
class Tally:
    """A table of counts and integer sums keyed by its dimension columns."""

    table: Table
    keys: tuple[str, ...]
    measures: tuple[str, ...]  # the first is the count `n`; a row at n == 0 is deleted

    async def add(self, session: AsyncSession, deltas: Mapping[Key, Sequence[int]]) -> None:
        rows = [
            dict(zip((*self.keys, *self.measures), (*key, *values), strict=True))
            for key, values in sorted(deltas.items(), key=lambda item: repr(item[0]))
            if any(values)
        ]
        if not rows:
            return
        statement = insert_for(session, self.table)
        excluded = statement.excluded  # type: ignore[attr-defined]
        statement = statement.on_conflict_do_update(  # type: ignore[attr-defined]
            index_elements=list(self.keys),
            set_={name: self.table.c[name] + excluded[name] for name in self.measures},
        )
        await execute_many(session, statement, rows)
        count = self.table.c[self.measures[0]]
        await session.exec(delete(self.table).where(count <= 0))


def encode(contribution: Contribution) -> dict[str, list[list[Any]]]:
    """A contribution as JSON: per tally, rows of key values then measures, in the order the
    projection produced them (the same snapshot always gives the same order)."""
    return {
        name: [[*key, *values] for key, values in contribution[name].items()]
        for name in sorted(contribution)
    }


def decode(stored: Mapping[str, Any] | None, tallies: Mapping[str, Tally]) -> Contribution:
    contribution: Contribution = {}
    for name, rows in (stored or {}).items():
        width = len(tallies[name].keys)
        contribution[name] = {tuple(row[:width]): tuple(row[width:]) for row in rows}
    return contribution


async def apply_contributions(
    session: AsyncSession,
    head: Table,
    tallies: Mapping[str, Tally],
    snapshots: Mapping[str, tuple[int, Contribution]],
) -> None:
    """Move each aggregate's share of the tallies to its newest snapshot's share."""
    stored = await advance(
        session,
        head,
        {
            aggregate_id: {"version": version, "contribution": encode(contribution)}
            for aggregate_id, (version, contribution) in snapshots.items()
        },
        keep=("contribution",),
    )
    deltas: dict[str, dict[Key, list[int]]] = {name: {} for name in tallies}
    for aggregate_id, old in stored.items():
        for sign, contribution in (
            (-1, decode(old["contribution"] if old else None, tallies)),
            (1, snapshots[aggregate_id][1]),
        ):
            for name, shares in contribution.items():
                bucket = deltas[name]
                for key, values in shares.items():
                    held = bucket.get(key)
                    if held is None:
                        bucket[key] = [sign * value for value in values]
                    else:
                        bucket[key] = [a + sign * b for a, b in zip(held, values, strict=True)]
    for name, tally in tallies.items():
        await tally.add(session, deltas[name])


def add_share(shares: dict[Key, tuple[int, ...]], key: Key, values: Sequence[int]) -> None:
    """Add measures to a key of one contribution (the same key may be reached twice)."""
    held = shares.get(key)
    shares[key] = (
        tuple(values) if held is None else tuple(a + b for a, b in zip(held, values, strict=True))
    )


def sum_column() -> Any:
    """A 64-bit integer column for sums in thousandths (`sa_column` of a SQLModel field)."""
    return Field(sa_column=Column(BigInteger, nullable=False))
