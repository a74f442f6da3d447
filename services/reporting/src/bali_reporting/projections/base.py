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

A rebuild replays every topic into empty tables, where only each aggregate's final
state matters: there a projection's `fold` keeps that state in memory over the whole
replay, by the same rules (`latest`, the same merges and contributions) as `apply`, and
writes every row once with plain INSERTs at the end.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, TypeVarTuple

from bali_common.db import execute_core
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
    TypeDecorator,
    bindparam,
    delete,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.dml import Insert
from sqlalchemy.types import JSON
from sqlmodel import Field
from sqlmodel.ext.asyncio.session import AsyncSession

#: One event as a projection receives it.
Applied = tuple[CloudEvent, EventPayload]
BatchApply = Callable[[AsyncSession, Sequence[Applied]], Awaitable[None]]
Key = tuple[Any, ...]
#: Tally name -> key -> measures (the first measure is always the count `n`).
Contribution = dict[str, dict[Key, tuple[int, ...]]]

T = TypeVar("T")
R = TypeVar("R")
Ts = TypeVarTuple("Ts")
_CHUNK_ROWS = 500
_FRESH_CHUNK_ROWS = 5_000


class Fold(Protocol):
    """A projection's state over a whole replay, written once into its empty tables.

    `add` then `write` equals `apply` of the same batches, one after the other, on
    empty tables."""

    def add(self, batch: Sequence[Applied]) -> None: ...

    async def write(self, session: AsyncSession) -> None: ...


@dataclass(frozen=True)
class Projection:
    """One read model: its tables, the payload classes it takes, its batch apply and the
    fold a rebuild uses instead while its tables are empty.

    `apply` over a batch equals applying each event of it alone, in any order."""

    name: str
    models: tuple[type[Any], ...]
    takes: tuple[type[EventPayload], ...]
    apply: BatchApply
    fold: Callable[[], Fold]

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
    return await execute_core(session, statement, list(rows))


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


#: A projection's snapshots of a batch: (aggregate id, version, what its head is made of).
Pick = Callable[[Sequence[Applied]], Iterable[tuple[str, int, T]]]


class NewestFold(Generic[T, R]):
    """The fold of a projection of version-guarded heads: per aggregate, what its newest
    item so far (`latest`'s rule, across batches) makes of it, written by `write`.

    Only the derived row is kept, not the item: payloads are large and many, and a heap
    of them makes each full garbage collection slow."""

    def __init__(
        self,
        pick: Pick[T],
        derive: Callable[[T], R],
        write: Callable[[AsyncSession, Mapping[str, tuple[int, R]]], Awaitable[None]],
    ) -> None:
        self._pick = pick
        self._derive = derive
        self._write = write
        self.newest: dict[str, tuple[int, R]] = {}

    def add(self, batch: Sequence[Applied]) -> None:
        newest = self.newest
        for aggregate_id, version, item in self._pick(batch):
            held = newest.get(aggregate_id)
            if held is None or held[0] < version:
                newest[aggregate_id] = (version, self._derive(item))

    async def write(self, session: AsyncSession) -> None:
        if self.newest:
            await self._write(session, self.newest)


class _SerializedJSON(TypeDecorator[str]):
    """A JSON column's value serialized already (a fold keeps contributions as text)."""

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> None:
        return None


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


async def insert_fresh(
    session: AsyncSession,
    table: Table,
    rows: Iterable[Mapping[str, Any]],
    *,
    serialized: Sequence[str] = (),
) -> None:
    """Plain INSERTs of rows into an empty table (a fold's write), in chunks of executemany:
    no conflict to resolve and nothing to read first. The `serialized` JSON columns are
    given as text."""
    statement = table.insert()
    if serialized:
        statement = statement.values(
            {
                column.name: bindparam(
                    column.name,
                    type_=_SerializedJSON() if column.name in serialized else column.type,
                )
                for column in table.c
            }
        )
    chunk: list[Mapping[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == _FRESH_CHUNK_ROWS:
            await execute_many(session, statement, chunk)
            chunk = []
    if chunk:
        await execute_many(session, statement, chunk)


MergeRows = Callable[[dict[str, dict[str, Any]], Sequence[Applied]], dict[str, dict[str, Any]]]


class MergedRowsFold:
    """Rows merged over the whole replay by the same function the projection's `apply`
    merges each batch with (commutative and idempotent), then inserted once."""

    def __init__(self, merge: MergeRows, table: Table) -> None:
        self._merge = merge
        self._table = table
        self.rows: dict[str, dict[str, Any]] = {}

    def add(self, batch: Sequence[Applied]) -> None:
        self._merge(self.rows, batch)

    async def write(self, session: AsyncSession) -> None:
        await insert_fresh(session, self._table, self.rows.values())


async def write_heads(
    session: AsyncSession,
    head: Table,
    rows: Mapping[str, Mapping[str, Any]],
    *,
    serialized: Sequence[str] = (),
) -> None:
    """Head rows as `advance` would have left them in an empty table."""
    id_name = head.primary_key.columns.values()[0].name
    await insert_fresh(
        session,
        head,
        # In key order: each insert then lands next to the last in the table's B-tree.
        ({id_name: aggregate_id, **rows[aggregate_id]} for aggregate_id in sorted(rows)),
        serialized=serialized,
    )


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

    async def write_fresh(self, session: AsyncSession, totals: Mapping[Key, Sequence[int]]) -> None:
        """Totals into the empty table, as `add` would have left them: no row at n <= 0."""
        names = (*self.keys, *self.measures)
        await insert_fresh(
            session,
            self.table,
            (
                dict(zip(names, (*key, *values), strict=True))
                for key, values in totals.items()
                if values[0] > 0
            ),
        )


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


def move_shares(
    totals: dict[str, dict[Key, list[int]]], contribution: Contribution, sign: int
) -> None:
    """Add (sign 1) or take back (sign -1) one contribution's shares of the tallies (in
    place: a rebuild's fold moves every aggregate's shares through here)."""
    for name, shares in contribution.items():
        bucket = totals[name]
        for key, values in shares.items():
            held = bucket.get(key)
            if held is None:
                bucket[key] = [sign * value for value in values]
            else:
                for index, value in enumerate(values):
                    held[index] += sign * value


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
        move_shares(deltas, decode(old["contribution"] if old else None, tallies), -1)
        move_shares(deltas, snapshots[aggregate_id][1], 1)
    for name, tally in tallies.items():
        await tally.add(session, deltas[name])


class ContributionFold(Generic[T]):
    """The fold of a projection made of contributions: per aggregate its newest version
    and share (as the JSON its head stores), and the tallies kept as running sums, moved
    from an aggregate's old share to its new one as `apply_contributions` moves them."""

    def __init__(
        self,
        pick: Pick[T],
        contribution: Callable[[T], Contribution],
        head: Table,
        tallies: Mapping[str, Tally],
    ) -> None:
        self._pick = pick
        self._contribution = contribution
        self._head = head
        self._tallies = tallies
        self.heads: dict[str, tuple[int, str]] = {}
        self.totals: dict[str, dict[Key, list[int]]] = {name: {} for name in tallies}

    def add(self, batch: Sequence[Applied]) -> None:
        heads = self.heads
        for aggregate_id, version, item in self._pick(batch):
            held = heads.get(aggregate_id)
            if held is not None and held[0] >= version:
                continue
            contribution = self._contribution(item)
            if held is not None:
                move_shares(self.totals, decode(json.loads(held[1]), self._tallies), -1)
            move_shares(self.totals, contribution, 1)
            heads[aggregate_id] = (version, json.dumps(encode(contribution)))

    async def write(self, session: AsyncSession) -> None:
        await write_heads(
            session,
            self._head,
            {
                aggregate_id: {"version": version, "contribution": text}
                for aggregate_id, (version, text) in self.heads.items()
            },
            serialized=("contribution",),
        )
        for name, tally in self._tallies.items():
            await tally.write_fresh(session, self.totals[name])


def contribution_fold(
    pick: Pick[T],
    contribution: Callable[[T], Contribution],
    head: Table,
    tallies: Mapping[str, Tally],
) -> tuple[BatchApply, Callable[[], Fold]]:
    """The batch apply and the fold of a projection made of contributions: the same picks
    and the same contribution function feed both."""

    async def apply(session: AsyncSession, batch: Sequence[Applied]) -> None:
        await apply_contributions(
            session,
            head,
            tallies,
            {
                aid: (version, contribution(item))
                for aid, (version, item) in latest(pick(batch)).items()
            },
        )

    return apply, lambda: ContributionFold(pick, contribution, head, tallies)


def head_fold(
    pick: Pick[T], row: Callable[[T], dict[str, Any]], head: Table
) -> tuple[BatchApply, Callable[[], Fold]]:
    """The batch apply and the fold of a projection of head rows alone (`advance`)."""

    def rows(newest: Mapping[str, tuple[int, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
        return {aid: {**values, "version": version} for aid, (version, values) in newest.items()}

    async def apply(session: AsyncSession, batch: Sequence[Applied]) -> None:
        newest = latest(pick(batch))
        await advance(
            session, head, rows({aid: (v, row(item)) for aid, (v, item) in newest.items()})
        )

    async def write(
        session: AsyncSession, newest: Mapping[str, tuple[int, dict[str, Any]]]
    ) -> None:
        await write_heads(session, head, rows(newest))

    return apply, lambda: NewestFold(pick, row, write)


def add_share(shares: dict[Key, tuple[int, ...]], key: Key, values: Sequence[int]) -> None:
    """Add measures to a key of one contribution (the same key may be reached twice)."""
    held = shares.get(key)
    shares[key] = (
        tuple(values) if held is None else tuple(a + b for a, b in zip(held, values, strict=True))
    )


def sum_column() -> Any:
    """A 64-bit integer column for sums in thousandths (`sa_column` of a SQLModel field)."""
    return Field(sa_column=Column(BigInteger, nullable=False))
