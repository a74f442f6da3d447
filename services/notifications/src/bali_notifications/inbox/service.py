"""Use cases of the in-app inbox: list, mark read or unread, catch a live stream up."""

from __future__ import annotations

from bali_common.auth import Principal
from bali_common.db import utcnow
from bali_common.http.pagination import PageRequest, keyset_page
from bali_common.problems import not_found
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_notifications.inbox.models import InboxItem, InboxItemPublic, InboxPage


def owners(principal: Principal) -> list[str]:
    """Who the caller reads for: the user, and the member it belongs to."""
    readers = [f"user:{principal.subject}"]
    if principal.member_id is not None:
        readers.append(f"member:{principal.member_id}")
    return readers


async def find(
    *, session: AsyncSession, principal: Principal, page: PageRequest, unread_only: bool
) -> InboxPage:
    readers = owners(principal)
    query = select(InboxItem).where(col(InboxItem.owner).in_(readers))
    if unread_only:
        query = query.where(col(InboxItem.read_at).is_(None))
    listed = await keyset_page(
        session, query, page=page, order_by=[col(InboxItem.id)], descending=True
    )
    unread = await session.exec(
        select(func.count()).where(
            col(InboxItem.owner).in_(readers), col(InboxItem.read_at).is_(None)
        )
    )
    return InboxPage(
        items=[InboxItemPublic.model_validate(row) for row in listed.rows],
        next_cursor=listed.next_cursor,
        unread_count=int(unread.one()),
    )


async def mark(
    *, session: AsyncSession, item_id: int, principal: Principal, read: bool
) -> InboxItemPublic:
    item = await session.get(InboxItem, item_id, with_for_update=True)
    if item is None or item.owner not in owners(principal):
        raise not_found(f"No inbox item {item_id}.")
    if read and item.read_at is None:
        item.read_at = utcnow()
    elif not read:
        item.read_at = None
    session.add(item)
    await session.commit()
    return InboxItemPublic.model_validate(item)


async def items_after(
    *, session: AsyncSession, owners: list[str], after_id: int | None, limit: int = 200
) -> list[InboxItemPublic]:
    """Catch-up for a live stream: unread items, or every item after the last one seen."""
    query = select(InboxItem).where(col(InboxItem.owner).in_(owners))
    if after_id is None:
        query = query.where(col(InboxItem.read_at).is_(None))
    else:
        query = query.where(col(InboxItem.id) > after_id)
    rows = await session.exec(query.order_by(col(InboxItem.id)).limit(limit))
    return [InboxItemPublic.model_validate(row) for row in rows]


async def latest_id(*, session: AsyncSession, owners: list[str]) -> int:
    latest = await session.exec(
        select(func.max(InboxItem.id)).where(col(InboxItem.owner).in_(owners))
    )
    return int(latest.one() or 0)
