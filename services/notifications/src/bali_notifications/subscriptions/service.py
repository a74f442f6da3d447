"""Use cases of subscriptions: create, list, read, change, delete, rotate the signing secret."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from bali_common.auth import Principal, Role
from bali_common.db import utcnow
from bali_common.events.notifications import Channel
from bali_common.http.concurrency import check_version
from bali_common.http.pagination import Page, PageRequest
from bali_common.problems import conflict, field_error, forbidden, not_found
from sqlalchemy import and_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_notifications.channels import ChannelSender, Target, UnusableTarget
from bali_notifications.persistence import commit_audited, page_by_creation
from bali_notifications.secrets_at_rest import SecretBox
from bali_notifications.signing import new_secret
from bali_notifications.subscriptions.models import (
    SecretRotated,
    Subscription,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionPublic,
    SubscriptionUpdate,
)


def _owner_member(principal: Principal, requested: str | None) -> str | None:
    """A member manages its own subscriptions; only administrators may name another owner."""
    if principal.is_admin:
        return requested if requested is not None else principal.member_id
    if principal.member_id is None:
        raise forbidden("Subscriptions belong to a member; this token names none.")
    if requested is not None and requested != principal.member_id:
        raise forbidden(
            "Only administrators may subscribe for another member.", field="body.member_id"
        )
    return principal.member_id


def _serves_co_chairs(principal: Principal, owner: str | None) -> bool:
    """Whether the caller setting a subscription's target does so as a co-chair of its member.

    Whether that member is a co-chair is the directory's word, asked when an event is
    planned; an administrator's rights never pass to a member's endpoint.
    """
    return principal.has_role(Role.co_chair) and owner is not None and principal.member_id == owner


async def _usable(sender: ChannelSender, target: Target) -> Target:
    try:
        return await sender.check_target(target)
    except UnusableTarget as error:
        raise field_error(f"body.{error.field}", error.reason) from error


def public(subscription: Subscription) -> SubscriptionPublic:
    return SubscriptionPublic.model_validate(subscription, from_attributes=True)


async def create(
    *,
    session: AsyncSession,
    sub_in: SubscriptionCreate,
    principal: Principal,
    senders: Mapping[Channel, ChannelSender],
    box: SecretBox,
) -> SubscriptionCreated:
    """The new subscription, with its webhook signing secret: the only time it is shown."""
    owner = _owner_member(principal, sub_in.member_id)
    target = await _usable(senders[sub_in.channel], Target(email=sub_in.email, url=sub_in.url))
    secret = new_secret() if sub_in.channel is Channel.webhook else None
    now = utcnow()
    subscription = Subscription(
        member_id=owner,
        created_by=principal.subject,
        name=sub_in.name,
        channel=sub_in.channel.value,
        email=target.email,
        url=target.url,
        digest=sub_in.digest.value,
        event_types=list(sub_in.event_types),
        severities=[severity.value for severity in sub_in.severities],
        area_numbers=sorted(set(sub_in.area_numbers)),
        item_numbers=sorted(set(sub_in.item_numbers)),
        member_ids=sorted(set(sub_in.member_ids)),
        for_co_chairs=_serves_co_chairs(principal, owner),
        secrets=[box.seal(secret)] if secret else [],
        created_at=now,
        updated_at=now,
    )
    await commit_audited(
        session,
        subscription,
        principal=principal,
        action="subscription.create",
        details={"channel": subscription.channel, "member_id": owner},
    )
    return SubscriptionCreated(**public(subscription).model_dump(), secret=secret)


def _visible_subscriptions(principal: Principal) -> Any:
    condition = col(Subscription.deleted_at).is_(None)
    if principal.is_admin:
        return condition
    return and_(condition, col(Subscription.member_id) == principal.member_id)


async def find(
    *,
    session: AsyncSession,
    principal: Principal,
    page: PageRequest,
    channel: Channel | None,
    member_id: str | None,
) -> Page[SubscriptionPublic]:
    if principal.member_id is None and not principal.is_admin:
        return Page(items=[])
    query = select(Subscription).where(_visible_subscriptions(principal))
    if channel is not None:
        query = query.where(Subscription.channel == channel.value)
    if member_id is not None:
        query = query.where(Subscription.member_id == member_id)
    return await page_by_creation(session, query, Subscription, page, public, newest_first=False)


async def get(
    *, session: AsyncSession, subscription_id: str, principal: Principal
) -> SubscriptionPublic:
    return public(await _visible(session, subscription_id, principal))


async def _visible(
    session: AsyncSession, subscription_id: str, principal: Principal, *, for_update: bool = False
) -> Subscription:
    """The subscription if the caller may see it; 404 alike for others' and missing ones."""
    subscription = await session.get(Subscription, subscription_id, with_for_update=for_update)
    visible = subscription is not None and subscription.deleted_at is None
    if visible and not principal.is_admin:
        visible = principal.member_id is not None and subscription.member_id == principal.member_id  # type: ignore[union-attr]
    if not visible:
        raise not_found(f"No subscription {subscription_id}.")
    assert subscription is not None
    return subscription


async def update(
    *,
    session: AsyncSession,
    subscription_id: str,
    changes: SubscriptionUpdate,
    if_match: str | None,
    principal: Principal,
    senders: Mapping[Channel, ChannelSender],
) -> SubscriptionPublic:
    given = changes.model_dump(exclude_unset=True)
    target = None
    if "email" in given or "url" in given:
        target = await _changed_target(session, subscription_id, principal, changes, senders)
    subscription = await _visible(session, subscription_id, principal, for_update=True)
    check_version(subscription.version, if_match)
    if "name" in given and changes.name is not None:
        subscription.name = changes.name
    if target is not None:
        subscription.email = target.email
        subscription.url = target.url
        # Whoever points the subscription somewhere decides what may be sent there.
        subscription.for_co_chairs = _serves_co_chairs(principal, subscription.member_id)
    if changes.digest is not None:
        subscription.digest = changes.digest.value
    for name in ("event_types", "area_numbers", "item_numbers", "member_ids"):
        value = getattr(changes, name)
        if value is not None:
            setattr(subscription, name, sorted(set(value)) if name != "event_types" else value)
    if changes.severities is not None:
        subscription.severities = [severity.value for severity in changes.severities]
    if changes.enabled is not None and changes.enabled != subscription.enabled:
        subscription.enabled = changes.enabled
        subscription.disabled_at = None if changes.enabled else utcnow()
        subscription.disabled_reason = (
            None if changes.enabled else f"disabled by {principal.subject}"
        )
    subscription.version += 1
    subscription.updated_at = utcnow()
    await commit_audited(
        session,
        subscription,
        principal=principal,
        action="subscription.update",
        details={"fields": sorted(given)},
    )
    return public(subscription)


async def _changed_target(
    session: AsyncSession,
    subscription_id: str,
    principal: Principal,
    changes: SubscriptionUpdate,
    senders: Mapping[Channel, ChannelSender],
) -> Target:
    """The subscription's target after the change, checked by its channel."""
    current = await _visible(session, subscription_id, principal)
    given = changes.model_fields_set
    target = Target(
        email=changes.email if "email" in given else current.email,
        url=changes.url if "url" in given else current.url,
    )
    sender = senders[Channel(current.channel)]
    # The check may resolve a URL: it runs with no row locked and no connection held (SQLite
    # has just one). The change itself reads the row again under lock, and If-Match
    # refuses it should the subscription have moved on in between.
    await session.rollback()
    return await _usable(sender, target)


async def delete(*, session: AsyncSession, subscription_id: str, principal: Principal) -> None:
    """Soft delete: delivery history keeps pointing at it; nothing more is planned or sent."""
    subscription = await _visible(session, subscription_id, principal, for_update=True)
    now = utcnow()
    subscription.deleted_at = now
    subscription.enabled = False
    subscription.secrets = []
    subscription.version += 1
    subscription.updated_at = now
    await commit_audited(session, subscription, principal=principal, action="subscription.delete")


async def rotate_secret(
    *,
    session: AsyncSession,
    subscription_id: str,
    principal: Principal,
    overlap: timedelta,
    box: SecretBox,
) -> SecretRotated:
    subscription = await _visible(session, subscription_id, principal, for_update=True)
    if subscription.channel != Channel.webhook.value:
        raise conflict(
            "Only webhook subscriptions have a signing secret.", slug="no-signing-secret"
        )
    now = utcnow()
    expires_at = now + overlap
    kept = [box.seal(secret, expires_at) for secret in box.active(subscription.secrets, now)]
    secret = new_secret()
    # Keep at most one previous secret: two signatures per request during a rotation.
    subscription.secrets = [*kept[-1:], box.seal(secret)]
    subscription.version += 1
    subscription.updated_at = now
    await commit_audited(
        session, subscription, principal=principal, action="subscription.rotate_secret"
    )
    return SecretRotated(secret=secret, previous_secret_expires_at=expires_at if kept else None)


async def current_secret(
    *, session: AsyncSession, subscription_id: str, box: SecretBox
) -> str | None:
    """The webhook signing secret a subscription signs with for good (none once deleted):
    what the replayed answer to its creation shows, as the stored answer holds none."""
    subscription = await session.get(Subscription, subscription_id)
    lasting = [e for e in (subscription.secrets if subscription else []) if not e["expires_at"]]
    return box.open(lasting[-1]) if lasting else None
