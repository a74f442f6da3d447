"""SQLite connections whose statements cost one trip to the connection's thread, not three or four.

aiosqlite runs every sqlite3 call in the connection's own thread and hands each back to the
event loop; SQLAlchemy's adapter makes one such hand-off to open a cursor, one to execute,
one to fetch the rows and one to close it. Each costs a queue put, a thread wake-up and a
loop wake-up, which on a small INSERT is more than SQLite's own work (measured in
`bench/RESULTS.md`: a request's seven statements spent more CPU in hand-offs than anywhere
else). Here a statement opens its sqlite3 cursor, executes, fetches every row and closes
in one call in that thread; the cursor SQLAlchemy holds answers from what it brought back.

Rows are always fetched whole, as SQLAlchemy's adapter already does for every cursor that
is not server-side (the platform opens none). Errors are sqlite3's own, raised through the
same adapter, so SQLAlchemy wraps them as before. The one-trip call uses aiosqlite's
`_execute` (queue a function for the connection's thread) and `_conn` (its sqlite3
connection); if a later aiosqlite lacks them, connections fall back to aiosqlite's cursors.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiosqlite

#: What one trip brings back: description, rows, rowcount, lastrowid.
_Outcome = tuple[Any, list[Any], int, int | None]


def supported() -> bool:
    """Whether this aiosqlite offers the calls the one-trip cursor needs."""
    return callable(getattr(aiosqlite.Connection, "_execute", None)) and isinstance(
        getattr(aiosqlite.Connection, "_conn", None), property
    )


def _run(connection: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Outcome:
    """In the connection's thread: the whole statement, cursor opened and closed."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneTripCursor:
    """The async cursor SQLAlchemy's aiosqlite adapter drives, answering from one trip."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1
        self._rows: list[Any] = []

    async def __aenter__(self) -> OneTripCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._rows = []

    async def _trip(self, operation: str, parameters: Any, many: bool) -> OneTripCursor:
        connection = self._connection
        execute: Callable[..., Awaitable[_Outcome]] = connection._execute
        outcome = await execute(_run, connection._conn, operation, parameters, many)
        self.description, self._rows, self.rowcount, self.lastrowid = outcome
        return self

    async def execute(self, operation: str, parameters: Any = None) -> OneTripCursor:
        return await self._trip(operation, parameters, False)

    async def executemany(self, operation: str, seq_of_parameters: Sequence[Any]) -> OneTripCursor:
        return await self._trip(operation, seq_of_parameters, True)

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = size or self.arraysize
        rows, self._rows = self._rows[:count], self._rows[count:]
        return rows

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def close(self) -> None:
        self._rows = []


class OneTripConnection:
    """An aiosqlite connection whose cursors are `OneTripCursor`s; everything else is
    aiosqlite's (commit, rollback, close, stop, isolation level, functions)."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._aiosqlite = connection

    def cursor(self) -> OneTripCursor:
        return OneTripCursor(self._aiosqlite)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._aiosqlite, name)


async def connect(database: str, **options: Any) -> OneTripConnection | aiosqlite.Connection:
    """An aiosqlite connection as SQLAlchemy's adapter opens one (its thread a daemon, so an
    unclosed connection never holds the interpreter at exit), with one-trip cursors when
    this aiosqlite allows them."""
    pending = aiosqlite.connect(database, **options)
    thread = getattr(pending, "_thread", None)
    if thread is not None:
        thread.daemon = True
    connection = await pending
    return OneTripConnection(connection) if supported() else connection
