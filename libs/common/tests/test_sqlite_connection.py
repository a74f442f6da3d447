"""The platform's SQLite engine: the statements SQLAlchemy issues, through one-trip cursors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest
from bali_common import sqlite_connection
from bali_common.db import create_engine
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

metadata = MetaData()
things = Table(
    "things",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(50), nullable=False, unique=True),
)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'one-trip.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


async def test_connections_use_one_trip_cursors(engine: AsyncEngine) -> None:
    assert sqlite_connection.supported()
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        assert isinstance(raw.driver_connection, sqlite_connection.OneTripConnection)
        # The pragmas every connection gets ran through them.
        assert (await connection.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar() == 1


async def test_writes_reads_and_counts_answer_as_sqlite3_does(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        first = await connection.execute(insert(things), {"name": "a"})
        assert first.inserted_primary_key == (1,)
        many = await connection.execute(insert(things), [{"name": "b"}, {"name": "c"}])
        assert many.rowcount == 2
        returned = await connection.execute(
            insert(things).returning(things.c.id, things.c.name), {"name": "d"}
        )
        assert returned.all() == [(4, "d")]
        changed = await connection.execute(
            update(things).where(things.c.id > 2).values(name=things.c.name + "!")
        )
        assert changed.rowcount == 2
    async with engine.connect() as connection:
        rows = (await connection.execute(select(things).order_by(things.c.id))).all()
        assert rows == [(1, "a"), (2, "b"), (3, "c!"), (4, "d!")]
        result = await connection.execute(select(things.c.name).order_by(things.c.id))
        assert result.fetchmany(3) == [("a",), ("b",), ("c!",)]
        assert result.fetchone() == ("d!",)
        assert result.fetchone() is None
        empty = await connection.execute(select(things).where(things.c.id > 99))
        assert empty.all() == []


async def test_errors_are_wrapped_and_roll_back_as_before(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(insert(things), {"name": "same"})
        with pytest.raises(IntegrityError):
            await connection.execute(insert(things), {"name": "same"})
        await connection.rollback()
        with pytest.raises(OperationalError):
            await connection.execute(text("SELECT * FROM no_such_table"))
    async with engine.connect() as connection:
        # The failed transaction left nothing, and the pooled connection still works.
        assert (await connection.execute(select(things))).all() == []


async def test_an_aiosqlite_without_the_one_trip_calls_gets_its_own_cursors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_connection, "supported", lambda: False)
    connection = await sqlite_connection.connect(str(tmp_path / "plain.db"))
    try:
        assert isinstance(connection, aiosqlite.Connection)
        async with connection.execute("SELECT 1") as cursor:
            assert await cursor.fetchall() == [(1,)]
    finally:
        await connection.close()
