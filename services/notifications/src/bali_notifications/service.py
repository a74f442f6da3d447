"""Use cases of the notifications service: planning deliveries, subscriptions, deliveries, inbox."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from bali_common.auth import Principal, Role
from bali_common.db import as_utc, utcnow
from bali_common.events import CloudEvent
from bali_common.events.activities import ActivityEvent
from bali_common.events.alerts import AlertEscalated, AlertEvent, AlertStatus
from bali_common.events.members import MemberSnapshot
from bali_common.events.notifications import Channel
from bali_common.http.audit import record_audit
from bali_common.http.concurrency import check_version
from bali_common.http.pagination import Page, PageRequest, keyset_page
from bali_common.problems import ProblemError, field_error
from pydantic import BaseModel
from sqlalchemy import and_, func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from bali_notifications import routing
from bali_notifications.deliveries.models import (
    REPLAYABLE_STATUSES,
    Delivery,
    DeliveryAttempt,
    DeliveryAttemptPublic,
    DeliveryDetail,
    DeliveryFilters,
    DeliveryPublic,
    DeliveryStatus,
    SourceEvent,
)
from bali_notifications.directory import MemberEntry
from bali_notifications.inbox.models import InboxItem, InboxItemPublic, InboxPage
from bali_notifications.planning import CLOSED_ALERT_STATUSES, AlertState
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

# --- members projection -------------------------------------------------------------------


async def apply_member_snapshot(*, session: AsyncSession, snapshot: MemberSnapshot) -> bool:
    """Upsert the member; an older or repeated version (reordering, redelivery) changes nothing."""
    entry = await session.get(MemberEntry, snapshot.member_id, with_for_update=True)
    if entry is not None and entry.version >= snapshot.version:
        return False
    entry = entry or MemberEntry(
        member_id=snapshot.member_id, name=snapshot.name, kind=snapshot.kind, version=0
    )
    entry.name = snapshot.name
    entry.kind = snapshot.kind.value
    entry.is_co_chair = snapshot.is_co_chair
    entry.active = snapshot.active
    entry.version = snapshot.version
    entry.focal_points = [point.model_dump(mode="json") for point in snapshot.focal_points]
    entry.updated_at = utcnow()
    session.add(entry)
    return True


# --- planning (consumers; never commits, never does network I/O) ---------------------------

#: Alert planning reads the member directory, the catch-up reads the alerts: on PostgreSQL
#: both take this transaction-scoped lock first, so that of an alert planned while its
#: recipient joins the directory, one of the two always sees the other's committed rows.
#: (SQLite has one connection: its transactions already take turns.)
_ALERT_ROUTING_LOCK = 0x6E6F_7469


async def _take_turns_routing_alerts(session: AsyncSession) -> None:
    if session.get_bind().dialect.name == "postgresql":
        await session.exec(select(func.pg_advisory_xact_lock(_ALERT_ROUTING_LOCK)))


async def plan_alert_notifications(
    *, session: AsyncSession, event: CloudEvent, payload: AlertEvent
) -> int:
    """Rule recipients plus matching subscriptions, one delivery row each; returns rows added."""
    await _take_turns_routing_alerts(session)
    await _remember_alert(session, event, payload)
    members = list((await session.exec(select(MemberEntry))).all())
    co_chairs = [m.member_id for m in members if m.is_co_chair and m.active]
    facts = routing.alert_facts(event.type, payload, co_chairs)
    plan = routing.RecipientPlan()
    for recipient in routing.rule_recipients(payload, members):
        plan.add(recipient)
    await _add_subscribers(session, plan, facts)
    alert = payload.alert
    return await _store_plan(
        session, event, plan, alert_id=alert.alert_id, severity=alert.severity.value
    )


async def _remember_alert(session: AsyncSession, event: CloudEvent, payload: AlertEvent) -> None:
    """Keep the alert's latest state and event; an older version (reordering) changes nothing."""
    alert = payload.alert
    asked_for_seniors = isinstance(payload, AlertEscalated) and payload.notify_senior_officials
    state = await session.get(AlertState, alert.alert_id, with_for_update=True)
    if state is not None and state.version >= alert.version:
        if asked_for_seniors and not state.senior_officials_notified:
            state.senior_officials_notified = True
            session.add(state)
        return
    # Stored in UTC: SQLite keeps the wall-clock time only, and the window compares it.
    raised_at = as_utc(alert.raised_at).astimezone(UTC)
    state = state or AlertState(
        alert_id=alert.alert_id,
        version=0,
        status=alert.status.value,
        severity=alert.severity.value,
        raised_at=raised_at,
        event_id=str(event.id),
        event_type=event.type,
    )
    state.version = alert.version
    state.status = alert.status.value
    state.severity = alert.severity.value
    state.raised_at = raised_at
    state.affected_members = list(alert.affected_members)
    state.senior_officials_notified = state.senior_officials_notified or asked_for_seniors
    state.event_id = str(event.id)
    state.event_type = event.type
    state.updated_at = utcnow()
    session.add(state)
    # Whoever is told of the alert later is sent this event: it carries the latest state.
    await _store_source(session, event)


async def plan_missed_alert_notifications(
    *, session: AsyncSession, member_id: str, window: timedelta, now: datetime | None = None
) -> int:
    """Plan what a member missed of the alerts still open: it joined, or gained focal points
    or the co-chair role, after they were planned. Returns the deliveries added.

    Co-chairs catch up on every open alert, other members on those that name them
    as affected; alerts raised longer than `window` ago are left alone. Whoever
    already had a delivery of an alert (any of its events) gets nothing more; the
    others get one, of the alert's latest event.
    """
    await _take_turns_routing_alerts(session)
    members = list((await session.exec(select(MemberEntry))).all())
    member = next((m for m in members if m.member_id == member_id), None)
    if member is None or not member.active:
        return 0
    since = (now or utcnow()) - window
    open_alerts = await session.exec(
        select(AlertState).where(
            col(AlertState.status).not_in(CLOSED_ALERT_STATUSES),
            col(AlertState.raised_at) >= since,
        )
    )
    states = [s for s in open_alerts if member.is_co_chair or member_id in s.affected_members]
    if not states:
        return 0
    told = {
        (alert_id, channel, recipient)
        for alert_id, channel, recipient in (
            await session.exec(
                select(Delivery.alert_id, Delivery.channel, Delivery.recipient).where(
                    col(Delivery.alert_id).in_([s.alert_id for s in states])
                )
            )
        ).all()
    }
    added = 0
    for state in states:
        plan = routing.RecipientPlan()
        for recipient in routing.alert_rule_recipients(
            status=AlertStatus(state.status),
            affected_members=state.affected_members,
            members=members,
            senior_officials=state.senior_officials_notified,
        ):
            if recipient.member_id == member_id:
                plan.add(recipient)
        missed = [r for r in plan.recipients() if (state.alert_id, *r.key) not in told]
        added += await _add_deliveries(
            session,
            event_id=state.event_id,
            event_type=state.event_type,
            recipients=missed,
            alert_id=state.alert_id,
            severity=state.severity,
        )
    return added


async def plan_activity_notifications(
    *, session: AsyncSession, event: CloudEvent, payload: ActivityEvent
) -> int:
    """Activities reach subscribers only; daily-digest subscribers get them queued."""
    plan = routing.RecipientPlan()
    await _add_subscribers(session, plan, routing.activity_facts(event.type, payload))
    return await _store_plan(session, event, plan, alert_id=None, severity=None)


async def _add_subscribers(
    session: AsyncSession, plan: routing.RecipientPlan, facts: routing.EventFacts
) -> None:
    subscriptions = await session.exec(
        select(Subscription).where(
            col(Subscription.deleted_at).is_(None), col(Subscription.enabled).is_(True)
        )
    )
    for subscription in subscriptions:
        if routing.subscription_matches(subscription, facts):
            plan.add(routing.subscription_recipient(subscription, facts))


async def _store_source(session: AsyncSession, event: CloudEvent) -> None:
    event_id = str(event.id)
    if await session.get(SourceEvent, event_id) is None:
        session.add(
            SourceEvent(
                event_id=event_id,
                event_type=event.type,
                event_version=event.version,
                subject=event.subject,
                occurred_at=event.time,
                data=event.data,
            )
        )
        await session.flush()


async def _store_plan(
    session: AsyncSession,
    event: CloudEvent,
    plan: routing.RecipientPlan,
    *,
    alert_id: str | None,
    severity: str | None,
) -> int:
    recipients = plan.recipients()
    if not recipients:
        return 0
    await _store_source(session, event)
    return await _add_deliveries(
        session,
        event_id=str(event.id),
        event_type=event.type,
        recipients=recipients,
        alert_id=alert_id,
        severity=severity,
    )


async def _add_deliveries(
    session: AsyncSession,
    *,
    event_id: str,
    event_type: str,
    recipients: Sequence[routing.Recipient],
    alert_id: str | None,
    severity: str | None,
) -> int:
    """One row per recipient not yet planned for the stored source event."""
    if not recipients:
        return 0
    # The unique (event, recipient, channel) key backs this up should two planners race.
    existing = {
        (channel, recipient)
        for channel, recipient in (
            await session.exec(
                select(Delivery.channel, Delivery.recipient).where(
                    Delivery.source_event_id == event_id
                )
            )
        ).all()
    }
    now = utcnow()
    added = 0
    for recipient in recipients:
        if recipient.key in existing:
            continue
        session.add(
            Delivery(
                source_event_id=event_id,
                event_type=event_type,
                channel=recipient.channel.value,
                recipient=recipient.address,
                member_id=recipient.member_id,
                subscription_id=recipient.subscription_id,
                alert_id=alert_id,
                severity=severity,
                reason=recipient.reason.value,
                acknowledge_link=recipient.acknowledge_link,
                status=(
                    DeliveryStatus.queued_for_digest.value
                    if recipient.digest
                    else DeliveryStatus.pending.value
                ),
                next_attempt_at=None if recipient.digest else now,
                created_at=now,
                updated_at=now,
            )
        )
        added += 1
    return added


# --- subscriptions ------------------------------------------------------------------------


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


def subscription_public(subscription: Subscription) -> SubscriptionPublic:
    return SubscriptionPublic.model_validate(subscription, from_attributes=True)


async def create_subscription(
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
    await _commit_audited(
        session,
        subscription,
        principal=principal,
        action="subscription.create",
        details={"channel": subscription.channel, "member_id": owner},
    )
    public = subscription_public(subscription)
    return SubscriptionCreated(**public.model_dump(), secret=secret)


def _visible_subscriptions(principal: Principal) -> Any:
    condition = col(Subscription.deleted_at).is_(None)
    if principal.is_admin:
        return condition
    return and_(condition, col(Subscription.member_id) == principal.member_id)


async def list_subscriptions(
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
    return await _page_by_creation(
        session, query, Subscription, page, subscription_public, newest_first=False
    )


async def get_subscription(
    *,
    session: AsyncSession,
    subscription_id: str,
    principal: Principal,
    for_update: bool = False,
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


async def update_subscription(
    *,
    session: AsyncSession,
    subscription_id: str,
    changes: SubscriptionUpdate,
    if_match: str | None,
    principal: Principal,
    guard: EgressGuard,
) -> Subscription:
    # The URL is checked (DNS) before the row is locked: no lock is held across network I/O.
    url = await _checked_url(guard, changes.url) if changes.url else None
    subscription = await get_subscription(
        session=session, subscription_id=subscription_id, principal=principal, for_update=True
    )
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
    await _commit_audited(
        session,
        subscription,
        principal=principal,
        action="subscription.update",
        details={"fields": sorted(given)},
    )
    return subscription


async def delete_subscription(
    *, session: AsyncSession, subscription_id: str, principal: Principal
) -> None:
    """Soft delete: delivery history keeps pointing at it; nothing more is planned or sent."""
    subscription = await get_subscription(
        session=session, subscription_id=subscription_id, principal=principal, for_update=True
    )
    now = utcnow()
    subscription.deleted_at = now
    subscription.enabled = False
    subscription.secrets = []
    subscription.version += 1
    subscription.updated_at = now
    await _commit_audited(session, subscription, principal=principal, action="subscription.delete")


async def rotate_secret(
    *,
    session: AsyncSession,
    subscription_id: str,
    principal: Principal,
    overlap: timedelta,
) -> SecretRotated:
    subscription = await get_subscription(
        session=session, subscription_id=subscription_id, principal=principal, for_update=True
    )
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
    await _commit_audited(
        session, subscription, principal=principal, action="subscription.rotate_secret"
    )
    return SecretRotated(secret=secret, previous_secret_expires_at=expires_at if kept else None)


# --- deliveries ---------------------------------------------------------------------------


def _sees_all_deliveries(principal: Principal) -> bool:
    return principal.allows(Role.ops)


def _visible_deliveries(principal: Principal) -> Any:
    own_inbox = col(Delivery.recipient) == f"user:{principal.subject}"
    if principal.member_id is None:
        return own_inbox
    return or_(col(Delivery.member_id) == principal.member_id, own_inbox)


def delivery_public(delivery: Delivery) -> DeliveryPublic:
    return DeliveryPublic.model_validate(delivery, from_attributes=True)


async def list_deliveries(
    *,
    session: AsyncSession,
    principal: Principal,
    page: PageRequest,
    filters: DeliveryFilters,
) -> Page[DeliveryPublic]:
    query = select(Delivery)
    if not _sees_all_deliveries(principal):
        query = query.where(_visible_deliveries(principal))
    for name, value in filters.model_dump(mode="json", exclude_none=True).items():
        query = query.where(getattr(Delivery, name) == value)
    return await _page_by_creation(
        session, query, Delivery, page, delivery_public, newest_first=True
    )


async def _visible_delivery(
    session: AsyncSession, delivery_id: str, principal: Principal, *, for_update: bool = False
) -> Delivery:
    delivery = await session.get(Delivery, delivery_id, with_for_update=for_update)
    visible = delivery is not None and (
        _sees_all_deliveries(principal)
        or (principal.member_id is not None and delivery.member_id == principal.member_id)
        or delivery.recipient == f"user:{principal.subject}"
    )
    if not visible:
        raise ProblemError(404, "Not Found", f"No delivery {delivery_id}.")
    assert delivery is not None
    return delivery


async def get_delivery(
    *, session: AsyncSession, delivery_id: str, principal: Principal
) -> DeliveryDetail:
    delivery = await _visible_delivery(session, delivery_id, principal)
    attempts = await session.exec(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.delivery_id == delivery.id)
        .order_by(col(DeliveryAttempt.number))
    )
    return DeliveryDetail(
        **delivery_public(delivery).model_dump(),
        attempts=[DeliveryAttemptPublic.model_validate(a) for a in attempts],
    )


async def replay_delivery(
    *, session: AsyncSession, delivery_id: str, principal: Principal
) -> DeliveryPublic:
    """Due again now with a fresh retry budget; the history of earlier attempts stays."""
    delivery = await _visible_delivery(session, delivery_id, principal, for_update=True)
    now = utcnow()
    claimed = delivery.claimed_until is not None and as_utc(delivery.claimed_until) > now
    if delivery.status not in REPLAYABLE_STATUSES or claimed:
        raise ProblemError(
            409,
            "Conflict",
            f"Delivery {delivery_id} is {delivery.status}; only failed, exhausted or retrying "
            "deliveries that are not being sent right now can be replayed.",
        )
    if delivery.subscription_id is not None:
        subscription = await session.get(Subscription, delivery.subscription_id)
        if subscription is None or subscription.deleted_at is not None:
            raise ProblemError(409, "Conflict", "The subscription of this delivery was deleted.")
        if not subscription.enabled:
            raise ProblemError(
                409,
                "Conflict",
                f"The endpoint is disabled ({subscription.disabled_reason}); re-enable the "
                "subscription first (PATCH with enabled: true).",
            )
    delivery.status = DeliveryStatus.pending.value
    delivery.attempts_in_round = 0
    delivery.next_attempt_at = now
    delivery.updated_at = now
    await _commit_audited(session, delivery, principal=principal, action="delivery.replay")
    return delivery_public(delivery)


# --- inbox --------------------------------------------------------------------------------


def inbox_owners(principal: Principal) -> list[str]:
    owners = [f"user:{principal.subject}"]
    if principal.member_id is not None:
        owners.append(f"member:{principal.member_id}")
    return owners


async def list_inbox(
    *, session: AsyncSession, principal: Principal, page: PageRequest, unread_only: bool
) -> InboxPage:
    owners = inbox_owners(principal)
    query = select(InboxItem).where(col(InboxItem.owner).in_(owners))
    if unread_only:
        query = query.where(col(InboxItem.read_at).is_(None))
    listed = await keyset_page(
        session, query, page=page, order_by=[col(InboxItem.id)], descending=True
    )
    unread = await session.exec(
        select(func.count()).where(
            col(InboxItem.owner).in_(owners), col(InboxItem.read_at).is_(None)
        )
    )
    return InboxPage(
        items=[InboxItemPublic.model_validate(row) for row in listed.rows],
        next_cursor=listed.next_cursor,
        unread_count=int(unread.one()),
    )


async def mark_inbox_item(
    *, session: AsyncSession, item_id: int, principal: Principal, read: bool
) -> InboxItemPublic:
    item = await session.get(InboxItem, item_id, with_for_update=True)
    if item is None or item.owner not in inbox_owners(principal):
        raise ProblemError(404, "Not Found", f"No inbox item {item_id}.")
    if read and item.read_at is None:
        item.read_at = utcnow()
    elif not read:
        item.read_at = None
    session.add(item)
    await session.commit()
    return InboxItemPublic.model_validate(item)


async def inbox_items_after(
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


async def latest_inbox_id(*, session: AsyncSession, owners: list[str]) -> int:
    latest = await session.exec(
        select(func.max(InboxItem.id)).where(col(InboxItem.owner).in_(owners))
    )
    return int(latest.one() or 0)


# --- shared -------------------------------------------------------------------------------

RowT = TypeVar("RowT", Subscription, Delivery)
PublicT = TypeVar("PublicT", bound=BaseModel)


async def _commit_audited(
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


async def _page_by_creation(
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
