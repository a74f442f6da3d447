"""Use cases of the deliveries API: list them, show one with its attempts, replay one."""

# A delivery carries no alert content (no title, text, place or people): it says who was
# sent which event of which alert, and how that went. Operations staff and administrators
# see every delivery, to keep the pipeline running; a member sees its own deliveries about
# what the visibility rule lets it see, so a co-chair member's plain users do not learn of
# restricted alerts its co-chairs were told of.

from __future__ import annotations

from typing import Any

from bali_common.auth import Principal, Role
from bali_common.db import as_utc, utcnow
from bali_common.http.pagination import Page, PageRequest
from bali_common.problems import conflict, not_found
from sqlalchemy import and_, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_notifications import audience
from bali_notifications.deliveries.models import (
    REPLAYABLE_STATUSES,
    Delivery,
    DeliveryAttempt,
    DeliveryAttemptPublic,
    DeliveryDetail,
    DeliveryFilters,
    DeliveryPublic,
    DeliveryStatus,
)
from bali_notifications.hub import NotificationHub
from bali_notifications.persistence import commit_audited, page_by_creation
from bali_notifications.subscriptions.models import Subscription


def _sees_all(principal: Principal) -> bool:
    return principal.allows(Role.ops)


async def _visible_to(session: AsyncSession, principal: Principal) -> Any:
    own_inbox = col(Delivery.recipient) == f"user:{principal.subject}"
    mine = own_inbox
    if principal.member_id is not None:
        mine = or_(col(Delivery.member_id) == principal.member_id, own_inbox)
    viewer = await audience.viewer_of(session=session, principal=principal)
    return and_(mine, audience.readable(col(Delivery.alert_id), viewer))


def public(delivery: Delivery) -> DeliveryPublic:
    return DeliveryPublic.model_validate(delivery, from_attributes=True)


async def find(
    *,
    session: AsyncSession,
    principal: Principal,
    page: PageRequest,
    filters: DeliveryFilters,
) -> Page[DeliveryPublic]:
    query = select(Delivery)
    if not _sees_all(principal):
        query = query.where(await _visible_to(session, principal))
    for name, value in filters.model_dump(mode="json", exclude_none=True).items():
        query = query.where(getattr(Delivery, name) == value)
    return await page_by_creation(session, query, Delivery, page, public, newest_first=True)


async def _visible(
    session: AsyncSession, delivery_id: str, principal: Principal, *, for_update: bool = False
) -> Delivery:
    query = select(Delivery).where(col(Delivery.id) == delivery_id)
    if not _sees_all(principal):
        query = query.where(await _visible_to(session, principal))
    if for_update:
        query = query.with_for_update()
    delivery = (await session.exec(query)).first()
    if delivery is None:
        raise not_found(f"No delivery {delivery_id}.")
    return delivery


async def get(*, session: AsyncSession, delivery_id: str, principal: Principal) -> DeliveryDetail:
    delivery = await _visible(session, delivery_id, principal)
    attempts = await session.exec(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.delivery_id == delivery.id)
        .order_by(col(DeliveryAttempt.number))
    )
    return DeliveryDetail(
        **public(delivery).model_dump(),
        attempts=[DeliveryAttemptPublic.model_validate(a) for a in attempts],
    )


async def replay(
    *, session: AsyncSession, delivery_id: str, principal: Principal, hub: NotificationHub
) -> DeliveryPublic:
    """Due again now with a fresh retry budget; the history of earlier attempts stays."""
    delivery = await _visible(session, delivery_id, principal, for_update=True)
    now = utcnow()
    claimed = delivery.claimed_until is not None and as_utc(delivery.claimed_until) > now
    if delivery.status not in REPLAYABLE_STATUSES or claimed:
        raise conflict(
            f"Delivery {delivery_id} is {delivery.status}; only failed, exhausted or retrying "
            "deliveries that are not being sent right now can be replayed.",
            slug="not-replayable",
        )
    if delivery.subscription_id is not None:
        subscription = await session.get(Subscription, delivery.subscription_id)
        if subscription is None or subscription.deleted_at is not None:
            raise conflict(
                "The subscription of this delivery was deleted.", slug="subscription-deleted"
            )
        if not subscription.enabled:
            raise conflict(
                f"The endpoint is disabled ({subscription.disabled_reason}); re-enable the "
                "subscription first (PATCH with enabled: true).",
                slug="endpoint-disabled",
            )
    delivery.status = DeliveryStatus.pending.value
    delivery.attempts_in_round = 0
    delivery.next_attempt_at = now
    delivery.updated_at = now
    hub.wake_after_commit(session)
    await commit_audited(session, delivery, principal=principal, action="delivery.replay")
    return public(delivery)
