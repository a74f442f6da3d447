"""The member directory and the live subscriptions as planning reads them, kept in the process.

Planning an alert read the whole directory and every live subscription, as ORM objects, on
every event: most of a plan's database time, for data that changes a few times a day. The
cache keeps them between events without ever answering from data older than the database's:

- a change this process makes (a member event applied, a subscription written through the
  API or disabled by the dispatcher) invalidates it at once and again when its transaction
  ends, and a transaction that changed them never fills it with what it has not committed;
- a change another replica made (its consumer took the member event, its API the
  subscription) is seen through a change token read in the planning transaction itself, one
  small statement: the row count and the sum of the row versions of both tables. Every change
  either adds a row or raises a row's version (members are upserted by version, subscriptions
  bump theirs on every write and are deleted softly), so the token of committed data only
  ever grows and differs whenever the data does;
- a time to live bounds anything else (a secret resealed in place keeps its version).

So the visibility rule is always asked with the data the planning transaction would read.
"""

from __future__ import annotations

import itertools
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ScalarSelect, Table, event, func
from sqlalchemy import select as sa_select
from sqlalchemy.orm import Session
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_notifications import directory
from bali_notifications.directory import MemberEntry
from bali_notifications.subscriptions.models import Subscription

_CHANGING_INFO_KEY = "bali_notifications_routing_changes"

#: (members, sum of member versions, subscriptions, sum of subscription versions)
Token = tuple[int, int, int, int]


@dataclass(frozen=True)
class RoutingData:
    """The directory and the live (enabled, not deleted) subscriptions, read together.

    Shared between plans: nobody may change these objects (writers load their own).
    """

    members: Sequence[MemberEntry]
    subscriptions: Sequence[Subscription]
    subscriptions_by_id: Mapping[str, Subscription] = field(default_factory=dict)

    @property
    def co_chairs(self) -> list[str]:
        """The active co-chairs' member ids, in directory order: the visibility rule's."""
        return [member.member_id for member in directory.co_chairs(self.members)]


async def read(session: AsyncSession) -> RoutingData:
    """The directory and the live subscriptions as `session` sees them, uncached."""
    members = await directory.entries(session=session)
    subscriptions = list(
        (
            await session.exec(
                select(Subscription).where(
                    col(Subscription.deleted_at).is_(None), col(Subscription.enabled).is_(True)
                )
            )
        ).all()
    )
    return RoutingData(
        members=members,
        subscriptions=subscriptions,
        subscriptions_by_id={s.id: s for s in subscriptions},
    )


async def _token(session: AsyncSession) -> Token:
    def count_and_versions(table: Table) -> tuple[ScalarSelect[Any], ScalarSelect[Any]]:
        return (
            sa_select(func.count()).select_from(table).scalar_subquery(),
            sa_select(func.coalesce(func.sum(table.c.version), 0)).scalar_subquery(),
        )

    tables = SQLModel.metadata.tables
    members = count_and_versions(tables[str(MemberEntry.__tablename__)])
    subscriptions = count_and_versions(tables[str(Subscription.__tablename__)])
    connection = await session.connection()
    row = (await connection.execute(sa_select(*members, *subscriptions))).one()
    return (int(row[0]), int(row[1]), int(row[2]), int(row[3]))


@dataclass(frozen=True)
class _Entry:
    token: Token
    data: RoutingData
    stored_at: float


class RoutingCache:
    """One per app instance: what `read` returns, kept while nothing changed (see the module)."""

    def __init__(self, ttl_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._entry: _Entry | None = None
        # Raised by every invalidation: a read that straddles one is not kept.
        self._generation = 0
        self.hits = 0
        self.misses = 0
        _CACHES.add(self)

    @property
    def holds(self) -> bool:
        """Whether the next plan may be answered from memory (if the token still matches)."""
        return self._entry is not None

    def invalidate(self) -> None:
        self._entry = None
        self._generation += 1

    def invalidate_with(self, session: AsyncSession | Session) -> None:
        """The transaction of `session` changes the directory or the subscriptions: forget
        them now and once it commits or rolls back; until then it reads them uncached and
        keeps nothing it read (its uncommitted changes must never be served to another)."""
        self.invalidate()
        session.info.setdefault(_CHANGING_INFO_KEY, set()).add(self)

    async def current(self, session: AsyncSession) -> RoutingData:
        """The data `read(session)` would return, from the cache when nothing changed since."""
        # Pending changes of this transaction reach the database (and mark it) first.
        await session.flush()
        if session.info.get(_CHANGING_INFO_KEY):
            return await read(session)
        generation = self._generation
        # The token first: on PostgreSQL each statement may see a later snapshot, so data read
        # after it is at least as new as the token says (a later check then misses, never lies).
        token = await _token(session)
        entry = self._entry
        if (
            entry is not None
            and entry.token == token
            and self._clock() - entry.stored_at < self._ttl_s
        ):
            self.hits += 1
            return entry.data
        self.misses += 1
        data = await read(session)
        if generation == self._generation and not session.info.get(_CHANGING_INFO_KEY):
            self._entry = _Entry(token=token, data=data, stored_at=self._clock())
        return data


#: Every cache of the process: whatever session writes a member or a subscription invalidates them.
_CACHES: weakref.WeakSet[RoutingCache] = weakref.WeakSet()


def _changes_routing_data(session: Session, _context: Any, _instances: Any) -> None:
    """Any writer (the consumer's member events, the subscription API, the dispatcher disabling
    an endpoint) invalidates the caches before its changes reach the database."""
    touched = itertools.chain(session.new, session.dirty, session.deleted)
    if any(isinstance(instance, MemberEntry | Subscription) for instance in touched):
        for cache in list(_CACHES):
            cache.invalidate_with(session)


def _invalidate_on_end(session: Session) -> None:
    for cache in session.info.pop(_CHANGING_INFO_KEY, ()):
        cache.invalidate()


event.listen(Session, "before_flush", _changes_routing_data)
event.listen(Session, "after_commit", _invalidate_on_end)
event.listen(Session, "after_rollback", _invalidate_on_end)
