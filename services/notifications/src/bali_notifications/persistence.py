"""Steps the use cases share: a change committed with its audit row, a page in creation order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from bali_common.auth import Principal
from bali_common.http.audit import record_audit
from bali_common.http.pagination import Page, PageRequest, keyset_page
from pydantic import BaseModel
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from bali_notifications.deliveries.models import Delivery
from bali_notifications.subscriptions.models import Subscription

RowT = TypeVar("RowT", Subscription, Delivery)
PublicT = TypeVar("PublicT", bound=BaseModel)


async def commit_audited(
    session: AsyncSession,
    row: Subscription | Delivery,
    *,
    principal: Principal,
    action: str,
    details: dict[str, Any] | None = None,
) -> None:
    """Commit the change with its audit row (action `<resource type>.<verb>`): both or neither."""
    session.add(row)
    record_audit(
        session,
        principal=principal,
        action=action,
        resource_type=action.partition(".")[0],
        resource_id=row.id,
        details=details,
    )
    await session.commit()


async def page_by_creation(
    session: AsyncSession,
    query: SelectOfScalar[RowT],
    model: type[RowT],
    page: PageRequest,
    public: Callable[[RowT], PublicT],
    *,
    newest_first: bool,
) -> Page[PublicT]:
    """A keyset page on (created_at, id), the unique sort key."""
    listed = await keyset_page(
        session,
        query,
        page=page,
        order_by=[col(model.created_at), col(model.id)],
        descending=newest_first,
    )
    return Page(items=[public(row) for row in listed.rows], next_cursor=listed.next_cursor)
