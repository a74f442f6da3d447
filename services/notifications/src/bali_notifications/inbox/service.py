"""Use cases of the in-app inbox: list, mark read or unread, catch a live stream up."""

# Every read asks the visibility rule at read time: a member's inbox is shared by all its
# users, and an item about a restricted alert is shown only to those the rule lets see the
# alert (for a co-chair member's inbox: its acting co-chairs), whatever the item's owner.

from __future__ import annotations

from typing import Any

from bali_common.auth import Principal
from bali_common.db import utcnow
from bali_common.http.pagination import PageRequest, keyset_page
from bali_common.problems import not_found
from bali_common.visibility import AlertViewer
from sqlalchemy import ColumnElement, and_, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_notifications import audience
from bali_notifications.inbox.models import InboxItem, InboxItemPublic, InboxPage


def owners(principal: Principal) -> list[str]:
    """Whose inboxes the caller reads: the user's, and the member's it belongs to."""
    readers = [f"user:{principal.subject}"]
    if principal.member_id is not None:
        readers.append(f"member:{principal.member_id}")
    return readers


def _for(principal: Principal, viewer: AlertViewer) -> ColumnElement[bool]:
    """The items the caller reads: in one of their inboxes, about what they may see."""
    return and_(
        col(InboxItem.owner).in_(owners(principal)),
        audience.readable(col(InboxItem.alert_id), viewer),
    )


async def find(
    *, session: AsyncSession, principal: Principal, page: PageRequest, unread_only: bool
) -> InboxPage:
    readable = _for(principal, await audience.viewer_of(session=session, principal=principal))
    query = select(InboxItem).where(readable)
    if unread_only:
        query = query.where(col(InboxItem.read_at).is_(None))
    listed = await keyset_page(
        session, query, page=page, order_by=[col(InboxItem.id)], descending=True
    )
    unread = await session.exec(
        select(func.count()).where(readable, col(InboxItem.read_at).is_(None))
    )
    return InboxPage(
        items=[InboxItemPublic.model_validate(row) for row in listed.rows],
        next_cursor=listed.next_cursor,
        unread_count=int(unread.one()),
    )


async def mark(
    *, session: AsyncSession, item_id: int, principal: Principal, read: bool
) -> InboxItemPublic:
    readable = _for(principal, await audience.viewer_of(session=session, principal=principal))
    found = await session.exec(
        select(InboxItem).where(col(InboxItem.id) == item_id, readable).with_for_update()
    )
    item = found.first()
    if item is None:
        raise not_found(f"No inbox item {item_id}.")
    if read and item.read_at is None:
        item.read_at = utcnow()
    elif not read:
        item.read_at = None
    session.add(item)
    await session.commit()
    return InboxItemPublic.model_validate(item)


async def items_after(
    *, session: AsyncSession, principal: Principal, after_id: int | None, limit: int = 200
) -> list[InboxItemPublic]:
    """Catch-up for a live stream: unread items, or every item after the last one seen."""
    viewer = await audience.viewer_of(session=session, principal=principal)
    query: Any = select(InboxItem).where(_for(principal, viewer))
    if after_id is None:
        query = query.where(col(InboxItem.read_at).is_(None))
    else:
        query = query.where(col(InboxItem.id) > after_id)
    rows = await session.exec(query.order_by(col(InboxItem.id)).limit(limit))
    return [InboxItemPublic.model_validate(row) for row in rows]


async def latest_id(*, session: AsyncSession, principal: Principal) -> int:
    """The newest item id of the caller's inboxes, readable or not: where a stream starts."""
    latest = await session.exec(
        select(func.max(InboxItem.id)).where(col(InboxItem.owner).in_(owners(principal)))
    )
    return int(latest.one() or 0)
