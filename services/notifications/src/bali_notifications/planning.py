"""Turning an event into delivery rows: rule recipients, subscribers, catch-up of missed alerts."""

# Consumers call these inside their transaction: nothing here commits or does network I/O,
# so that a plan and the event's consumption commit together.

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bali_common.db import as_utc, utc_column, utcnow
from bali_common.events import CloudEvent
from bali_common.events.activities import ActivityEvent
from bali_common.events.alerts import AlertEscalated, AlertEvent, AlertStatus, Sensitivity
from bali_common.events.notifications import Channel
from bali_common.visibility import AlertAudience
from sqlalchemy import delete, func
from sqlalchemy import event as orm_events
from sqlalchemy.orm import Session
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_notifications import directory, routing, routing_cache
from bali_notifications.channels import ChannelSender
from bali_notifications.deliveries.models import Delivery, DeliveryJob, DeliveryStatus, SourceEvent
from bali_notifications.fields import json_list, timestamp_now
from bali_notifications.hub import Handover
from bali_notifications.routing_cache import RoutingCache, RoutingData
from bali_notifications.subscriptions.models import Subscription

#: An alert in one of these states needs nobody told any more.
CLOSED_ALERT_STATUSES = (AlertStatus.resolved.value, AlertStatus.withdrawn.value)


class AlertState(SQLModel, table=True):
    """Each alert's latest state, kept from alert.* events (upserted by version).

    Routing reads the member directory when an alert event is planned; whoever
    joins the directory later is planned from here (`plan_missed_alerts`).
    """

    __tablename__ = "alert_states"

    alert_id: str = Field(primary_key=True, max_length=100)
    version: int
    status: str = Field(max_length=40)
    severity: str = Field(max_length=20)
    raised_at: datetime = Field(sa_column=utc_column(index=True))
    affected_members: list[str] = json_list()
    #: The alert's audience, for the visibility rule at read time (with `AlertAffectedMember`);
    #: NULL for a row kept before the rule was, until `audience.backfill` fills it in.
    sensitivity: str | None = Field(default=None, max_length=20)
    raised_by_member: str | None = Field(default=None, max_length=100, index=True)
    senior_officials_notified: bool = Field(
        default=False, description="An escalation asked for the co-chairs' senior officials"
    )
    event_id: str = Field(max_length=100, description="The latest event, kept in source_events")
    event_type: str = Field(max_length=100)
    updated_at: datetime = timestamp_now()

    def audience(self) -> AlertAudience:
        """Who may see the alert; one kept before its audience was counts as restricted."""
        return AlertAudience(
            sensitivity=Sensitivity(self.sensitivity or Sensitivity.restricted),
            raised_by_member=self.raised_by_member or "",
            affected_members=frozenset(self.affected_members),
        )


class AlertAffectedMember(SQLModel, table=True):
    """The members an alert affects (as its latest state says), as rows: the visibility rule's
    list queries stay portable SQL."""

    __tablename__ = "alert_state_affected_members"

    alert_id: str = Field(primary_key=True, max_length=100)
    member_id: str = Field(primary_key=True, max_length=100, index=True)


async def keep_affected(
    session: AsyncSession, alert_id: str, members: Sequence[str], *, first: bool = False
) -> None:
    """Replace the alert's affected-member rows (no commit); `first`: the alert is new here,
    it has none to delete (one statement less on the way to its first notifications)."""
    if not first:
        await session.exec(
            delete(AlertAffectedMember).where(col(AlertAffectedMember.alert_id) == alert_id)
        )
    session.add_all(AlertAffectedMember(alert_id=alert_id, member_id=m) for m in set(members))


#: The source events the session's transaction stored (forgotten when it ends).
_NEW_SOURCES_INFO_KEY = "bali_notifications_new_sources"


@orm_events.listens_for(Session, "after_commit")
@orm_events.listens_for(Session, "after_rollback")
def _forget_new_sources(session: Session) -> None:
    session.info.pop(_NEW_SOURCES_INFO_KEY, None)


#: Alert planning reads the member directory, the catch-up reads the alerts: on PostgreSQL
#: both take this transaction-scoped lock first, so that of an alert planned while its
#: recipient joins the directory, one of the two always sees the other's committed rows.
#: (SQLite has one connection: its transactions already take turns.)
_ALERT_ROUTING_LOCK = 0x6E6F_7469


async def _take_turns_routing_alerts(session: AsyncSession) -> None:
    if session.get_bind().dialect.name == "postgresql":
        await session.exec(select(func.pg_advisory_xact_lock(_ALERT_ROUTING_LOCK)))


@dataclass(frozen=True)
class _ForDispatcher:
    """What the deliveries of one plan need to be claimed and handed over as jobs."""

    handover: Handover
    source: SourceEvent
    subscriptions: Mapping[str, Subscription]
    co_chairs: frozenset[str]


async def _routing_data(session: AsyncSession, cache: RoutingCache | None) -> RoutingData:
    """The directory and subscriptions this transaction sees (the cache answers with the same)."""
    if cache is None:
        return await routing_cache.read(session)
    return await cache.current(session)


async def plan_for_alert(
    *,
    session: AsyncSession,
    event: CloudEvent,
    payload: AlertEvent,
    senders: Mapping[Channel, ChannelSender],
    cache: RoutingCache | None = None,
    handover: Handover | None = None,
) -> int:
    """Rule recipients plus matching subscriptions, one delivery row each; returns rows added.

    With a `handover`, the rows due now are claimed for the dispatcher in this transaction
    and added to it as jobs, to be sent as soon as the transaction commits.
    """
    await _take_turns_routing_alerts(session)
    await _remember_alert(session, event, payload)
    data = await _routing_data(session, cache)
    members = data.members
    co_chairs = data.co_chairs
    facts = routing.alert_facts(event.type, payload, co_chairs)
    plan = routing.RecipientPlan()
    for recipient in routing.rule_recipients(payload, members):
        plan.add(recipient)
    _add_subscribers(plan, facts, senders, data.subscriptions)
    alert = payload.alert
    return await _store_plan(
        session,
        event,
        plan.allowed(facts.audience, co_chairs),
        alert_id=alert.alert_id,
        severity=alert.severity.value,
        handover=handover,
        data=data,
        co_chairs=frozenset(co_chairs),
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
    first = state is None
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
    state.sensitivity = alert.sensitivity.value
    state.raised_by_member = alert.raised_by_member
    state.senior_officials_notified = state.senior_officials_notified or asked_for_seniors
    state.event_id = str(event.id)
    state.event_type = event.type
    state.updated_at = utcnow()
    session.add(state)
    await keep_affected(session, alert.alert_id, alert.affected_members, first=first)
    # Whoever is told of the alert later is sent this event: it carries the latest state.
    await _store_source(session, event)


async def plan_missed_alerts(
    *,
    session: AsyncSession,
    member_id: str,
    window: timedelta,
    now: datetime | None = None,
    handover: Handover | None = None,
) -> int:
    """Plan what a member missed of the alerts still open: it joined, or gained focal points
    or the co-chair role, after they were planned. Returns the deliveries added.

    Co-chairs catch up on every open alert, other members on those that name them
    as affected; alerts raised longer than `window` ago are left alone. Whoever
    already had a delivery of an alert (any of its events) gets nothing more; the
    others get one, of the alert's latest event.
    """
    await _take_turns_routing_alerts(session)
    # Never cached: the member's own change is in this transaction, not yet committed.
    members = await directory.entries(session=session)
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
    co_chairs = [m.member_id for m in directory.co_chairs(members)]
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
        allowed = plan.allowed(state.audience(), co_chairs)
        missed = [r for r in allowed if (state.alert_id, *r.key) not in told]
        source = await session.get(SourceEvent, state.event_id) if handover and missed else None
        added += await _add_deliveries(
            session,
            event_id=state.event_id,
            event_type=state.event_type,
            recipients=missed,
            alert_id=state.alert_id,
            severity=state.severity,
            # Rule recipients only: no subscription to hand over with them.
            dispatch=(
                _ForDispatcher(handover, source, {}, frozenset(co_chairs))
                if handover is not None and source is not None
                else None
            ),
        )
    return added


async def plan_for_activity(
    *,
    session: AsyncSession,
    event: CloudEvent,
    payload: ActivityEvent,
    senders: Mapping[Channel, ChannelSender],
    cache: RoutingCache | None = None,
    handover: Handover | None = None,
) -> int:
    """Activities reach subscribers only; daily-digest subscribers get them queued."""
    data = await _routing_data(session, cache)
    plan = routing.RecipientPlan()
    _add_subscribers(plan, routing.activity_facts(event.type, payload), senders, data.subscriptions)
    return await _store_plan(
        session,
        event,
        plan.recipients(),
        alert_id=None,
        severity=None,
        handover=handover,
        data=data,
        co_chairs=frozenset(),  # not an alert: the visibility rule does not apply
    )


def _add_subscribers(
    plan: routing.RecipientPlan,
    facts: routing.EventFacts,
    senders: Mapping[Channel, ChannelSender],
    subscriptions: Sequence[Subscription],
) -> None:
    for subscription in subscriptions:
        if routing.subscription_matches(subscription, facts):
            address = senders[Channel(subscription.channel)].address_of(subscription)
            plan.add(routing.subscription_recipient(subscription, facts, address=address))


async def _store_source(session: AsyncSession, event: CloudEvent) -> SourceEvent:
    event_id = str(event.id)
    source = await session.get(SourceEvent, event_id)
    if source is None:
        source = SourceEvent(
            event_id=event_id,
            event_type=event.type,
            event_version=event.version,
            subject=event.subject,
            occurred_at=event.time,
            data=event.data,
        )
        session.add(source)
        await session.flush()
        session.info.setdefault(_NEW_SOURCES_INFO_KEY, set()).add(event_id)
    return source


async def _store_plan(
    session: AsyncSession,
    event: CloudEvent,
    recipients: Sequence[routing.Recipient],
    *,
    alert_id: str | None,
    severity: str | None,
    handover: Handover | None,
    data: RoutingData,
    co_chairs: frozenset[str],
) -> int:
    if not recipients:
        return 0
    source = await _store_source(session, event)
    return await _add_deliveries(
        session,
        event_id=str(event.id),
        event_type=event.type,
        recipients=recipients,
        alert_id=alert_id,
        severity=severity,
        dispatch=(
            _ForDispatcher(handover, source, data.subscriptions_by_id, co_chairs)
            if handover is not None
            else None
        ),
    )


async def _add_deliveries(
    session: AsyncSession,
    *,
    event_id: str,
    event_type: str,
    recipients: Sequence[routing.Recipient],
    alert_id: str | None,
    severity: str | None,
    dispatch: _ForDispatcher | None = None,
) -> int:
    """One row per recipient not yet planned for the stored source event; with `dispatch`,
    those due now are written claimed for the dispatcher and handed over as jobs."""
    if not recipients:
        return 0
    # The unique (event, recipient, channel) key backs this up should two planners race.
    # A source event this transaction stored has no deliveries yet: nothing to look up.
    existing = (
        set()
        if event_id in session.info.get(_NEW_SOURCES_INFO_KEY, ())
        else {
            (channel, recipient)
            for channel, recipient in (
                await session.exec(
                    select(Delivery.channel, Delivery.recipient).where(
                        Delivery.source_event_id == event_id
                    )
                )
            ).all()
        }
    )
    now = utcnow()
    added = 0
    for recipient in recipients:
        if recipient.key in existing:
            continue
        delivery = Delivery(
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
        session.add(delivery)
        added += 1
        if dispatch is not None and not recipient.digest:
            _claim_for_handover(delivery, recipient, dispatch)
    return added


def _claim_for_handover(
    delivery: Delivery, recipient: routing.Recipient, dispatch: _ForDispatcher
) -> None:
    """Lease the new row to the dispatcher and hand it over with what sending it needs.

    Emails are left to the dispatcher's poll, which the commit wakes. A mail server cannot
    drop a repeated send, and an email the server accepted is sent again after a crash if
    its outcome was not recorded yet; handed over at the planning commit, emails were sent
    while the next plans held the database, which doubled that window (recording took 32 ms
    on average instead of 16 in the fault suite's killed-service case, which then found a
    repeated email). Webhooks (the webhook-id lets receivers drop a repeat) and inbox items
    go at once.
    """
    if recipient.channel is Channel.email:
        return
    subscription = (
        dispatch.subscriptions.get(recipient.subscription_id)
        if recipient.subscription_id is not None
        else None
    )
    if recipient.subscription_id is not None and subscription is None:
        return  # not among the data planned with: left for the poll, which loads it
    handover = dispatch.handover
    delivery.claimed_by = handover.claimed_by
    delivery.claimed_until = handover.claimed_until
    handover.jobs.append(
        DeliveryJob(
            delivery=delivery,
            source=dispatch.source,
            subscription=subscription,
            co_chairs=dispatch.co_chairs,
        )
    )
