"""Who must hear of an event: the routing rules for alerts and the matching of subscriptions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from bali_common.catalogue import load_strategy
from bali_common.events.activities import ActivityEvent
from bali_common.events.alerts import AlertEscalated, AlertEvent, AlertStatus, AlertSummary
from bali_common.events.members import FocalPointRole
from bali_common.events.notifications import Channel
from bali_common.visibility import AlertAudience, AlertViewer, member_recipient

from bali_notifications import directory
from bali_notifications.deliveries.models import DeliveryJob, DeliveryReason
from bali_notifications.directory import MemberEntry
from bali_notifications.subscriptions.models import DigestMode, Subscription

#: The Consultation Mechanism is strategy item 11: every alert belongs to it.
CONSULTATION_ITEM = 11
#: Only an alert nobody has acknowledged yet needs the one-click acknowledge link.
_UNACKNOWLEDGED = {AlertStatus.raised, AlertStatus.escalated}
# When one person is reached for several reasons, the strongest one names the delivery.
_REASON_RANK = {
    DeliveryReason.co_chair: 0,
    DeliveryReason.senior_official: 1,
    DeliveryReason.affected_member: 2,
    DeliveryReason.subscription: 3,
}
#: Rule recipients that serve their member's co-chairs (its focal points and senior officials).
_FOR_CO_CHAIRS = frozenset({DeliveryReason.co_chair, DeliveryReason.senior_official})


@dataclass(frozen=True)
class Recipient:
    channel: Channel
    address: str  # email address, webhook subscription id, or inbox owner
    member_id: str | None
    reason: DeliveryReason
    subscription_id: str | None = None
    acknowledge_link: bool = False
    digest: bool = False
    #: Serves its member's co-chairs: sees what they see while the member is a co-chair.
    for_co_chairs: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.channel.value, self.address)

    def viewer(self, co_chair_members: Iterable[str]) -> AlertViewer:
        """The recipient as the visibility rule sees it: one that stands for its member."""
        return member_recipient(
            self.member_id, for_co_chairs=self.for_co_chairs, co_chair_members=set(co_chair_members)
        )


class RecipientPlan:
    """Recipients of one event, one per (channel, address): the unit a delivery row stands for."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], Recipient] = {}

    def add(self, recipient: Recipient) -> None:
        current = self._by_key.get(recipient.key)
        if current is None:
            self._by_key[recipient.key] = recipient
            return
        stronger = min(current, recipient, key=lambda r: _REASON_RANK[r.reason])
        self._by_key[recipient.key] = replace(
            stronger,
            acknowledge_link=current.acknowledge_link or recipient.acknowledge_link,
            # A rule recipient is never held back for a digest.
            digest=current.digest and recipient.digest,
            for_co_chairs=current.for_co_chairs or recipient.for_co_chairs,
        )

    def recipients(self) -> list[Recipient]:
        return list(self._by_key.values())

    def allowed(self, audience: AlertAudience | None, co_chairs: Iterable[str]) -> list[Recipient]:
        """The recipients the visibility rule lets see an alert of `audience` (None: no alert)."""
        if audience is None:
            return self.recipients()
        co_chair_members = set(co_chairs)
        return [r for r in self.recipients() if r.viewer(co_chair_members).may_see(audience)]


@dataclass(frozen=True)
class EventFacts:
    """What subscription filters look at, taken from an event."""

    event_type: str
    severity: str | None
    item_numbers: frozenset[int]
    area_numbers: frozenset[int]
    member_ids: frozenset[str]
    #: Who may see the alert the event is about (the visibility rule); None: not an alert.
    audience: AlertAudience | None = None
    #: The members the directory lists as co-chairs when the event is planned.
    co_chairs: frozenset[str] = frozenset()
    is_activity: bool = False


def audience_of(alert: AlertSummary) -> AlertAudience:
    return AlertAudience(
        sensitivity=alert.sensitivity,
        raised_by_member=alert.raised_by_member,
        affected_members=frozenset(alert.affected_members),
    )


def alert_facts(event_type: str, event: AlertEvent, co_chairs: Iterable[str]) -> EventFacts:
    alert = event.alert
    area = load_strategy().area_of_item(CONSULTATION_ITEM).number
    return EventFacts(
        event_type=event_type,
        severity=alert.severity.value,
        item_numbers=frozenset({CONSULTATION_ITEM}),
        area_numbers=frozenset({area}),
        member_ids=frozenset({alert.raised_by_member, *alert.affected_members}),
        audience=audience_of(alert),
        co_chairs=frozenset(co_chairs),
    )


def activity_facts(event_type: str, event: ActivityEvent) -> EventFacts:
    activity = event.activity
    return EventFacts(
        event_type=event_type,
        severity=None,
        item_numbers=frozenset(activity.item_numbers),
        area_numbers=frozenset(activity.area_numbers),
        member_ids=frozenset({activity.lead_member, *activity.participating_members}),
        is_activity=True,
    )


def _type_matches(patterns: Sequence[str], event_type: str) -> bool:
    if not patterns:
        return True
    return any(
        pattern == event_type or (pattern.endswith(".*") and event_type.startswith(pattern[:-1]))
        for pattern in patterns
    )


def subscription_matches(subscription: Subscription, facts: EventFacts) -> bool:
    """Every non-empty filter must match; severity filters only events that have a severity."""
    if not subscription.enabled or subscription.deleted_at is not None:
        return False
    if facts.audience is not None and not subscriber(subscription, facts.co_chairs).may_see(
        facts.audience
    ):
        return False
    if not _type_matches(subscription.event_types, facts.event_type):
        return False
    severity = facts.severity
    if subscription.severities and severity is not None and severity not in subscription.severities:
        return False
    if subscription.area_numbers or subscription.item_numbers:
        by_area = bool(facts.area_numbers.intersection(subscription.area_numbers))
        by_item = bool(facts.item_numbers.intersection(subscription.item_numbers))
        if not (by_area or by_item):
            return False
    return not subscription.member_ids or bool(
        facts.member_ids.intersection(subscription.member_ids)
    )


def subscriber(subscription: Subscription, co_chairs: Iterable[str]) -> AlertViewer:
    """A subscription's endpoint as the visibility rule sees it: it stands for its member,
    and for the member's co-chairs only if an acting co-chair gave it its target."""
    return member_recipient(
        subscription.member_id,
        for_co_chairs=subscription.for_co_chairs,
        co_chair_members=set(co_chairs),
    )


def subscription_recipient(
    subscription: Subscription, facts: EventFacts, *, address: str
) -> Recipient:
    """The subscriber of a matching event, reached at `address` (its channel says which)."""
    return Recipient(
        channel=Channel(subscription.channel),
        address=address,
        member_id=subscription.member_id,
        reason=DeliveryReason.subscription,
        subscription_id=subscription.id,
        digest=facts.is_activity and subscription.digest == DigestMode.daily.value,
        for_co_chairs=subscription.for_co_chairs,
    )


def may_send(job: DeliveryJob) -> bool:
    """Whether the rule still lets the delivery's recipient see the alert its event is about,
    as the directory and the subscription stand when it is sent: a subscription whose target
    someone else set since, or a member no longer co-chair, is not sent what it may not see."""
    alert = job.source.data.get("alert") if job.delivery.alert_id else None
    if alert is None:
        return True
    audience = audience_of(AlertSummary.model_validate(alert))
    if job.subscription is not None:
        return subscriber(job.subscription, job.co_chairs).may_see(audience)
    for_co_chairs = DeliveryReason(job.delivery.reason) in _FOR_CO_CHAIRS
    recipient = member_recipient(
        job.delivery.member_id, for_co_chairs=for_co_chairs, co_chair_members=job.co_chairs
    )
    return recipient.may_see(audience)


def rule_recipients(event: AlertEvent, members: Sequence[MemberEntry]) -> list[Recipient]:
    """Co-chairs hear of every alert, affected members of theirs, senior officials on escalation."""
    alert = event.alert
    return alert_rule_recipients(
        status=alert.status,
        affected_members=alert.affected_members,
        members=members,
        senior_officials=isinstance(event, AlertEscalated) and event.notify_senior_officials,
    )


def alert_rule_recipients(
    *,
    status: AlertStatus,
    affected_members: Sequence[str],
    members: Sequence[MemberEntry],
    senior_officials: bool,
) -> list[Recipient]:
    """The rule recipients of an alert in `status`, as the member directory stands now."""
    by_id = {member.member_id: member for member in members if member.active}
    co_chairs = directory.co_chairs(members)
    with_link = status in _UNACKNOWLEDGED
    recipients: list[Recipient] = []
    for member in co_chairs:
        recipients += [
            Recipient(
                Channel.email,
                email,
                member.member_id,
                DeliveryReason.co_chair,
                acknowledge_link=with_link,
                for_co_chairs=True,
            )
            for email in directory.focal_point_emails(member, FocalPointRole.focal_point)
        ]
        recipients.append(
            Recipient(
                Channel.inbox,
                f"member:{member.member_id}",
                member.member_id,
                DeliveryReason.co_chair,
                for_co_chairs=True,
            )
        )
    for member_id in affected_members:
        affected = by_id.get(member_id)
        if affected is None:
            continue
        recipients += [
            Recipient(Channel.email, email, affected.member_id, DeliveryReason.affected_member)
            for email in directory.focal_point_emails(affected, FocalPointRole.focal_point)
        ]
        recipients.append(
            Recipient(
                Channel.inbox,
                f"member:{affected.member_id}",
                affected.member_id,
                DeliveryReason.affected_member,
            )
        )
    if senior_officials:
        for member in co_chairs:
            recipients += [
                Recipient(
                    Channel.email,
                    email,
                    member.member_id,
                    DeliveryReason.senior_official,
                    for_co_chairs=True,
                )
                for email in directory.focal_point_emails(member, FocalPointRole.senior_official)
            ]
    return recipients
