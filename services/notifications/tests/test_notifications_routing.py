"""Routing rules alone: who hears of an alert, how recipients merge, what subscriptions match."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pytest
from bali_common.catalogue import load_strategy
from bali_common.db import utcnow
from bali_common.events.alerts import AlertEscalated, AlertStatus, Sensitivity, Severity
from bali_common.events.members import MemberRegistered
from bali_common.events.notifications import Channel
from bali_common.visibility import AlertAudience
from bali_notifications import routing
from bali_notifications.deliveries.models import DeliveryReason
from bali_notifications.directory import MemberEntry
from bali_notifications.subscriptions.models import Subscription
from notification_harness import activity_created, alert_raised, member, standard_directory


def entries(registered: Sequence[MemberRegistered]) -> list[MemberEntry]:
    """The directory as the projection stores these members."""
    return [
        MemberEntry(
            member_id=m.member_id,
            name=m.name,
            kind=m.kind.value,
            is_co_chair=m.is_co_chair,
            active=m.active,
            version=m.version,
            focal_points=[point.model_dump(mode="json") for point in m.focal_points],
        )
        for m in registered
    ]


def described(recipients: Sequence[routing.Recipient]) -> list[tuple[str, str, str, bool]]:
    return sorted(
        (r.channel.value, r.address, r.reason.value, r.acknowledge_link) for r in recipients
    )


def subscription(**fields: object) -> Subscription:
    values: dict[str, object] = {"created_by": "someone", "name": "test", "channel": "webhook"}
    return Subscription.model_validate(values | fields)


CONSULTATION_AREA = load_strategy().area_of_item(routing.CONSULTATION_ITEM).number
CO_CHAIRS_TOLD = [
    ("email", "ana@au.example.org", "co_chair", True),
    ("email", "ben@au.example.org", "co_chair", True),
    ("email", "dewi@id.example.org", "co_chair", True),
    ("inbox", "member:AU", "co_chair", False),
    ("inbox", "member:ID", "co_chair", False),
]


def test_a_raised_alert_reaches_co_chairs_with_a_link_and_affected_members_without() -> None:
    alert = alert_raised(raised_by="PH", affected=["MY", "XX"])
    recipients = routing.rule_recipients(alert, entries(standard_directory()))
    # Not the raiser, not AU's inactive focal point, not the senior officials, and not XX,
    # whom the directory does not know.
    assert described(recipients) == sorted(
        [
            *CO_CHAIRS_TOLD,
            ("email", "mei@my.example.org", "affected_member", False),
            ("inbox", "member:MY", "affected_member", False),
        ]
    )


def test_an_escalation_asking_for_them_adds_the_co_chairs_senior_officials() -> None:
    raised = alert_raised(raised_by="PH", affected=[])
    escalated = AlertEscalated(
        alert=raised.alert.model_copy(update={"version": 2, "status": AlertStatus.escalated}),
        actor=raised.actor,
        occurred_at=utcnow(),
        level=2,
        reason="manual",
        notify_senior_officials=True,
    )
    recipients = routing.rule_recipients(escalated, entries(standard_directory()))
    assert described(recipients) == sorted(
        [
            *CO_CHAIRS_TOLD,
            ("email", "senior@au.example.org", "senior_official", False),
            ("email", "senior@id.example.org", "senior_official", False),
        ]
    )


@pytest.mark.parametrize(
    ("status", "with_link"),
    [
        (AlertStatus.raised, True),
        (AlertStatus.escalated, True),
        (AlertStatus.acknowledged, False),
        (AlertStatus.resolved, False),
    ],
)
def test_only_an_unacknowledged_alert_gives_co_chairs_the_acknowledge_link(
    status: AlertStatus, with_link: bool
) -> None:
    recipients = routing.alert_rule_recipients(
        status=status,
        affected_members=["MY"],
        members=entries(standard_directory()),
        senior_officials=False,
    )
    assert any(r.acknowledge_link for r in recipients) is with_link
    assert all(
        r.acknowledge_link
        == (with_link and r.reason is DeliveryReason.co_chair and r.channel is Channel.email)
        for r in recipients
    )


def test_inactive_members_hear_nothing() -> None:
    directory = standard_directory()
    retired = [
        m.model_copy(update={"active": False}) if m.member_id == "AU" else m for m in directory
    ]
    recipients = routing.alert_rule_recipients(
        status=AlertStatus.raised,
        affected_members=["AU", "MY"],
        members=entries(retired),
        senior_officials=True,
    )
    assert "AU" not in {r.member_id for r in recipients}
    assert {r.member_id for r in recipients} == {"ID", "MY"}


def test_one_recipient_reached_for_several_reasons_gets_one_delivery_named_by_the_strongest() -> (
    None
):
    plan = routing.RecipientPlan()
    subscriber = routing.Recipient(
        Channel.email,
        "ana@au.example.org",
        "AU",
        DeliveryReason.subscription,
        subscription_id="sub-1",
        digest=True,
    )
    plan.add(subscriber)
    plan.add(
        routing.Recipient(
            Channel.email,
            "ana@au.example.org",
            "AU",
            DeliveryReason.co_chair,
            acknowledge_link=True,
        )
    )
    plan.add(
        routing.Recipient(Channel.email, "ana@au.example.org", "AU", DeliveryReason.senior_official)
    )
    plan.add(routing.Recipient(Channel.inbox, "member:AU", "AU", DeliveryReason.affected_member))
    [email, inbox] = plan.recipients()
    assert email.reason is DeliveryReason.co_chair
    assert email.acknowledge_link, "kept from any of the reasons"
    assert not email.digest, "a rule recipient is never held back for a digest"
    assert inbox.key == ("inbox", "member:AU")


def test_alert_facts_are_item_11_its_area_and_the_members_involved() -> None:
    public = alert_raised(raised_by="PH", affected=["MY"])
    facts = routing.alert_facts("alert.raised", public, co_chairs=["AU", "ID"])
    assert facts.item_numbers == {routing.CONSULTATION_ITEM}
    assert facts.area_numbers == {CONSULTATION_AREA}
    assert facts.member_ids == {"PH", "MY"}
    assert facts.severity == "Extreme"
    assert facts.audience == AlertAudience(Sensitivity.public, "PH", frozenset({"MY"}))
    assert facts.co_chairs == {"AU", "ID"}


@pytest.mark.parametrize(
    ("filters", "matches"),
    [
        ({}, True),
        ({"event_types": ["alert.*"]}, True),
        ({"event_types": ["alert.raised", "alert.resolved"]}, True),
        ({"event_types": ["alert.resolved"]}, False),
        ({"event_types": ["activity.*"]}, False),
        ({"severities": ["Extreme", "Severe"]}, True),
        ({"severities": ["Minor"]}, False),
        ({"item_numbers": [11]}, True),
        ({"item_numbers": [5]}, False),
        ({"item_numbers": [5], "area_numbers": [CONSULTATION_AREA]}, True),
        ({"member_ids": ["MY"]}, True),
        ({"member_ids": ["ID"]}, False),
        ({"enabled": False}, False),
        ({"deleted_at": datetime(2026, 1, 1)}, False),
    ],
)
def test_every_filter_a_subscription_sets_must_match_an_alert(
    filters: dict[str, object], matches: bool
) -> None:
    facts = routing.alert_facts("alert.raised", alert_raised(raised_by="PH", affected=["MY"]), [])
    assert routing.subscription_matches(subscription(**filters), facts) is matches


@pytest.mark.parametrize(
    ("owner", "for_co_chairs", "matches"),
    [
        ("PH", False, True),  # raised it
        ("MY", False, True),  # affected
        ("AU", True, True),  # an acting co-chair of AU set its target
        ("AU", False, False),  # a plain user of AU did: AU is not named in the alert
        ("NZ", True, False),  # a co_chair role, but NZ is no co-chair
        ("IOM", False, False),
        (None, True, False),  # an administrator's own subscription stands for no member
    ],
)
def test_a_restricted_alert_matches_only_subscriptions_the_rule_lets_see_it(
    owner: str | None, for_co_chairs: bool, matches: bool
) -> None:
    restricted = alert_raised(raised_by="PH", affected=["MY"], sensitivity=Sensitivity.restricted)
    facts = routing.alert_facts("alert.raised", restricted, co_chairs=["AU"])
    made = subscription(member_id=owner, for_co_chairs=for_co_chairs)
    assert routing.subscription_matches(made, facts) is matches
    public = routing.alert_facts("alert.raised", alert_raised(), co_chairs=["AU"])
    assert routing.subscription_matches(made, public)


def test_planned_recipients_are_those_the_rule_lets_see_the_alert() -> None:
    plan = routing.RecipientPlan()
    for recipient in routing.rule_recipients(
        alert_raised(raised_by="PH", affected=["MY"]), entries(standard_directory())
    ):
        plan.add(recipient)
    plan.add(routing.Recipient(Channel.webhook, "sub-au", "AU", DeliveryReason.subscription))
    plan.add(routing.Recipient(Channel.webhook, "sub-iom", "IOM", DeliveryReason.subscription))
    restricted = AlertAudience(Sensitivity.restricted, "PH", frozenset({"MY"}))
    allowed = {r.address for r in plan.allowed(restricted, ["AU", "ID"])}
    assert allowed == {r.address for r in plan.recipients()} - {"sub-au", "sub-iom"}
    assert {r.address for r in plan.allowed(restricted, ["ID"])} == allowed - {
        "ana@au.example.org",
        "ben@au.example.org",
        "member:AU",
    }, "AU's focal points and inbox serve a co-chair only while the directory lists AU"
    assert plan.allowed(None, []) == plan.recipients()


def test_activities_ignore_severity_filters_and_may_wait_for_a_daily_digest() -> None:
    activity = activity_created(lead="IOM", items=[5], areas=[2])
    facts = routing.activity_facts("activity.created", activity)
    assert facts.member_ids == {"IOM"}
    daily = subscription(severities=[Severity.extreme.value], digest="daily", channel="email")
    assert routing.subscription_matches(daily, facts)
    recipient = routing.subscription_recipient(daily, facts, address="digest@iom.example.org")
    assert (recipient.channel, recipient.address, recipient.digest) == (
        Channel.email,
        "digest@iom.example.org",
        True,
    )
    alert = routing.alert_facts("alert.raised", alert_raised(), [])
    assert not routing.subscription_recipient(daily, alert, address="x").digest, "alerts never wait"


def test_a_member_registered_without_focal_points_is_told_in_its_inbox_only() -> None:
    recipients = routing.alert_rule_recipients(
        status=AlertStatus.raised,
        affected_members=["TL"],
        members=entries([member("TL", "Timor-Leste")]),
        senior_officials=False,
    )
    assert described(recipients) == [("inbox", "member:TL", "affected_member", False)]
