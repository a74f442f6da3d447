"""Use cases of subscriptions: create, list, read, change, delete, rotate the signing secret."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bali_common.auth import Principal
from bali_common.db import utcnow
from bali_common.events.notifications import Channel
from bali_common.http.concurrency import check_version
from bali_common.http.pagination import Page, PageRequest
from bali_common.problems import ProblemError, field_error
from sqlalchemy import and_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_notifications.persistence import commit_audited, page_by_creation
from bali_notifications.signing import new_secret
from bali_notifications.ssrf import BlockedDestination, EgressGuard
from bali_notifications.subscriptions.models import (
    SecretRotated,
    Subscription,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionPublic,
    SubscriptionUpdate,
    active_secrets,
)


def _owner_member(principal: Principal, requested: str | None) -> str | None:
    """A member manages its own subscriptions; only administrators may name another owner."""
    if principal.is_admin:
        return requested if requested is not None else principal.member_id
    if principal.member_id is None:
        raise ProblemError(
            403, "Forbidden", "Subscriptions belong to a member; this token names none."
        )
    if requested is not None and requested != principal.member_id:
        raise field_error(
            "body.member_id", "only administrators may subscribe for another member", status=403
        )
    return principal.member_id


async def _checked_url(guard: EgressGuard, url: str) -> str:
    try:
        return (await guard.check(url)).url
    except BlockedDestination as error:
        raise field_error("body.url", str(error)) from error


def _check_channel_target(channel: Channel, email: str | None, url: str | None) -> None:
    if channel is Channel.email:
        if not email:
            raise field_error("body.email", "required for the email channel")
        if url is not None:
            raise field_error("body.url", "only webhook subscriptions have a URL")
    elif channel is Channel.webhook:
        if not url:
            raise field_error("body.url", "required for the webhook channel")
        if email is not None:
            raise field_error("body.email", "only email subscriptions have an address")
    elif email is not None or url is not None:
        raise field_error("body.channel", "inbox subscriptions take neither email nor url")


def public(subscription: Subscription) -> SubscriptionPublic:
    return SubscriptionPublic.model_validate(subscription, from_attributes=True)


async def create(
    *,
    session: AsyncSession,
    sub_in: SubscriptionCreate,
    principal: Principal,
    guard: EgressGuard,
) -> SubscriptionCreated:
    owner = _owner_member(principal, sub_in.member_id)
    _check_channel_target(sub_in.channel, sub_in.email, sub_in.url)
    url = await _checked_url(guard, sub_in.url) if sub_in.url else None
    secret = new_secret() if sub_in.channel is Channel.webhook else None
    now = utcnow()
    subscription = Subscription(
        member_id=owner,
        created_by=principal.subject,
        name=sub_in.name,
        channel=sub_in.channel.value,
        email=sub_in.email.lower() if sub_in.email else None,
        url=url,
        digest=sub_in.digest.value,
        event_types=list(sub_in.event_types),
        severities=[severity.value for severity in sub_in.severities],
        area_numbers=sorted(set(sub_in.area_numbers)),
        item_numbers=sorted(set(sub_in.item_numbers)),
        member_ids=sorted(set(sub_in.member_ids)),
        secrets=[{"secret": secret, "expires_at": None}] if secret else [],
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
        raise ProblemError(404, "Not Found", f"No subscription {subscription_id}.")
    assert subscription is not None
    return subscription


async def update(
    *,
    session: AsyncSession,
    subscription_id: str,
    changes: SubscriptionUpdate,
    if_match: str | None,
    principal: Principal,
    guard: EgressGuard,
) -> SubscriptionPublic:
    # The URL is checked (DNS) before the row is locked: no lock is held across network I/O.
    url = await _checked_url(guard, changes.url) if changes.url else None
    subscription = await _visible(session, subscription_id, principal, for_update=True)
    check_version(subscription.version, if_match)
    given = changes.model_dump(exclude_unset=True)
    if "email" in given or "url" in given:
        _check_channel_target(
            Channel(subscription.channel),
            changes.email if "email" in given else subscription.email,
            url if "url" in given else subscription.url,
        )
    if "name" in given and changes.name is not None:
        subscription.name = changes.name
    if "email" in given:
        subscription.email = changes.email.lower() if changes.email else None
    if "url" in given:
        subscription.url = url
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
) -> SecretRotated:
    subscription = await _visible(session, subscription_id, principal, for_update=True)
    if subscription.channel != Channel.webhook.value:
        raise ProblemError(409, "Conflict", "Only webhook subscriptions have a signing secret.")
    now = utcnow()
    expires_at = now + overlap
    kept = [
        {"secret": secret, "expires_at": expires_at.isoformat()}
        for secret in active_secrets(subscription, now)
    ]
    secret = new_secret()
    # Keep at most one previous secret: two signatures per request during a rotation.
    subscription.secrets = [*kept[-1:], {"secret": secret, "expires_at": None}]
    subscription.version += 1
    subscription.updated_at = now
    await commit_audited(
        session, subscription, principal=principal, action="subscription.rotate_secret"
    )
    return SecretRotated(secret=secret, previous_secret_expires_at=expires_at if kept else None)
