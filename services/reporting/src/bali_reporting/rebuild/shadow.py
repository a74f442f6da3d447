"""Shadow tables of a rebuild: the projections' tables under another schema, then swapped in.

On PostgreSQL the shadow is the schema `reporting_rebuild` of the same database; on
SQLite it is a database file beside the service's own, attached under that name. The
projections write there unchanged: their sessions translate the default schema. The
swap replaces every projection table and the group's inbox rows in one transaction,
so readers see the old tables or the new ones, never a mix.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from bali_common.db import create_engine, create_session_factory, table_of
from bali_common.messaging.inbox import InboxEntry
from sqlalchemy import MetaData, Table, delete, event, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

SHADOW_SCHEMA = "reporting_rebuild"

log = logging.getLogger(__name__)


class ShadowStore:
    """Fresh copies of `models` (and of the inbox) to replay into, then swap in."""

    def __init__(self, database_url: str, models: Sequence[type[SQLModel]], group: str) -> None:
        self._url = database_url
        self._group = group
        self._live = [table_of(model) for model in models]
        self._inbox = table_of(InboxEntry)
        metadata = MetaData()
        self._shadow = {
            table.name: table.to_metadata(metadata, schema=SHADOW_SCHEMA)
            for table in (*self._live, self._inbox)
        }
        url = make_url(database_url)
        self._sqlite_file: Path | None = None
        if url.get_backend_name() == "sqlite":
            if not url.database or url.database == ":memory:":
                raise ValueError("a rebuild needs a database file or server, not :memory:")
            self._sqlite_file = Path(f"{url.database}.rebuild")
        self._engine: AsyncEngine | None = None

    async def open(self) -> None:
        """Create the shadow tables, empty (a crashed earlier rebuild's are dropped first)."""
        engine = create_engine(self._url)
        if self._sqlite_file is not None:
            self._sqlite_file.unlink(missing_ok=True)
            shadow_file = str(self._sqlite_file)

            @event.listens_for(engine.sync_engine, "connect")
            def _attach(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute(f"ATTACH DATABASE ? AS {SHADOW_SCHEMA}", (shadow_file,))
                # Disposable until swapped: a crash means rebuilding again, so skip the journal.
                cursor.execute(f"PRAGMA {SHADOW_SCHEMA}.journal_mode=OFF")
                cursor.execute(f"PRAGMA {SHADOW_SCHEMA}.synchronous=OFF")
                # The fold writes every table at once: keep its B-trees' pages in memory
                # (the default cache of 2 MB evicts them while 50,000 heads go in).
                cursor.execute(f"PRAGMA {SHADOW_SCHEMA}.cache_size=-65536")
                cursor.close()
        else:
            async with engine.begin() as connection:
                await connection.execute(text(f"DROP SCHEMA IF EXISTS {SHADOW_SCHEMA} CASCADE"))
                await connection.execute(text(f"CREATE SCHEMA {SHADOW_SCHEMA}"))
        async with engine.begin() as connection:
            tables = list(self._shadow.values())
            await connection.run_sync(lambda sync: MetaData().create_all(sync, tables=tables))
        self._engine = engine

    async def clear(self) -> None:
        """Empty every shadow table (a fold that failed to be written may have left rows)."""
        async with self._require_engine().begin() as connection:
            for table in self._shadow.values():
                await connection.execute(delete(table))

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose statements on the projections' tables write the shadow copies."""
        engine = self._require_engine().execution_options(
            schema_translate_map={None: SHADOW_SCHEMA}
        )
        async with create_session_factory(engine)() as session, session.begin():
            yield session

    async def swap(self) -> None:
        """Replace the live tables and the group's inbox rows with the shadow's, atomically."""
        async with self._require_engine().begin() as connection:
            for table in self._live:
                await connection.execute(delete(table))
                await connection.execute(self._copy(table))
            await connection.execute(
                delete(self._inbox).where(self._inbox.c.consumer_group == self._group)
            )
            await connection.execute(self._copy(self._inbox))
        if self._sqlite_file is None:
            # Every row of these tables is new: give the planner their statistics now.
            async with self._require_engine().begin() as connection:
                for table in (*self._live, self._inbox):
                    await connection.execute(text(f"ANALYZE {table.name}"))

    def _copy(self, table: Table) -> Any:
        columns = list(table.c.keys())
        source = self._shadow[table.name]
        return insert(table).from_select(columns, select(*(source.c[name] for name in columns)))

    async def close(self) -> None:
        """Drop the shadow tables (after a swap they are a copy; after a failure, debris)."""
        engine, self._engine = self._engine, None
        if engine is None:
            return
        try:
            if self._sqlite_file is None:
                async with engine.begin() as connection:
                    await connection.execute(text(f"DROP SCHEMA IF EXISTS {SHADOW_SCHEMA} CASCADE"))
        except Exception:
            log.exception("could not drop the shadow schema %s", SHADOW_SCHEMA)
        finally:
            await engine.dispose()
            if self._sqlite_file is not None:
                self._sqlite_file.unlink(missing_ok=True)

    def _require_engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("the shadow store is not open")
        return self._engine
