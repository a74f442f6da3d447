"""Catch-up: an alert that came before its people reaches them once they join the directory."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from bali_common.db import SessionFactory, transaction, utcnow
from bali_common.events import CloudEvent
from bali_common.events.alerts import (
    AlertAcknowledged,
    AlertEscalated,
    AlertRaised,
    AlertStatus,
)
from bali_common.events.members import FocalPointData, FocalPointRole
from bali_common.links import ACKNOWLEDGE_LINK_PURPOSE, verify_link_token
from bali_common.messaging.inbox import InboxEntry
from bali_devkit.testing.plugin import eventually
from bali_notifications import directory, planning
from bali_notifications.deliveries.models import Delivery
from notification_harness import (
    Harness,
    ServiceStarter,
    alert_closed,
    alert_raised,
    focal_point,
    member,
    standard_directory,
)
from notification_receivers import MailSink
from sqlalchemy import text
from sqlmodel import func, select

DIRECTORY_IDS = [entry.member_id for entry in standard_directory()]
LINK = re.compile(r"http://127\.0\.0\.1:8002/v1/alerts/(?P<alert>[^/]+)/acknowledge\?token=(\S+)")


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def harness(notifications: ServiceStarter) -> AsyncIterator[Harness]:
    """A fresh system with an empty member directory, which the first test relies on, and its
    dispatcher running in the background (waking on new plans only).

    The later tests register the standard directory themselves (a no-op once it is
    there). Every test closes the alerts it raises and takes back the focal points
    it adds, so that the next one finds no open alert and the standard directory.
    """
    async with notifications.started(
        "catch-up",
        members=(),
        dispatch_in_background=True,
        # Long enough that only the after-commit wake-up can explain a prompt delivery.
        dispatch_poll_interval_s=60.0,
    ) as harness:
        yield harness


async def ensure_directory(harness: Harness) -> None:
    """The standard directory; version 1 again changes nothing once it is there."""
    for entry in standard_directory():
        await harness.publish(entry, subject=entry.member_id)
    await harness.members_known(*DIRECTORY_IDS)


@contextlib.asynccontextmanager
async def focal_point_added(
    harness: Harness,
    member_id: str,
    name: str,
    role: FocalPointRole = FocalPointRole.focal_point,
) -> AsyncIterator[tuple[FocalPointData, CloudEvent]]:
    """A focal point added to the member (member.updated), taken back afterwards."""
    point = focal_point(member_id, name, role)
    event = await harness.add_focal_points(member_id, point)
    try:
        yield point, event
    finally:
        await harness.drop_focal_points(member_id, point.focal_point_id)


async def raise_alert(harness: Harness, payload: AlertRaised) -> CloudEvent:
    """Publish the alert and wait until the consumer has recorded it."""
    event = await harness.publish(payload, subject=payload.alert.alert_id)

    async def recorded() -> bool:
        return await harness.alert_state(payload.alert.alert_id) is not None

    await eventually(recorded)
    return event


async def close_alert(
    harness: Harness, raised: AlertRaised, status: AlertStatus = AlertStatus.resolved
) -> None:
    state = await harness.alert_state(raised.alert.alert_id)
    assert state is not None
    closing = alert_closed(raised, status=status, version=state.version + 1)
    await harness.publish(closing, subject=raised.alert.alert_id)

    async def closed_and_all_sent() -> bool:
        """The closing step planned (with the state) and every delivery out: nothing left
        in flight to show up in the next test's counts."""
        state = await harness.alert_state(raised.alert.alert_id)
        if state is None or state.status != status.value:
            return False
        deliveries = await harness.deliveries(alert_id=raised.alert.alert_id)
        return {d.status for d in deliveries} <= {"delivered"}

    await eventually(closed_and_all_sent)


async def delivered(harness: Harness, alert_id: str, count: int) -> list[Delivery]:
    """Wait until the alert has `count` deliveries, all delivered; fail on any more."""

    async def settled() -> bool:
        deliveries = await harness.deliveries(alert_id=alert_id)
        return len(deliveries) >= count and {d.status for d in deliveries} == {"delivered"}

    await eventually(settled)
    deliveries = await harness.deliveries(alert_id=alert_id)
    assert len(deliveries) == count, [(d.channel, d.recipient) for d in deliveries]
    return deliveries


def mails_by_recipient(smtp_server: MailSink, alert_id: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for mail in smtp_server.for_alert(alert_id):
        for recipient in mail.recipients:
            counts[recipient] = counts.get(recipient, 0) + 1
    return counts


def assert_acknowledge_link(
    harness: Harness, smtp_server: MailSink, alert_id: str, to: str
) -> None:
    [mail] = [m for m in smtp_server.for_alert(alert_id) if m.recipients == [to]]
    [(linked_alert, token)] = LINK.findall(mail.text)
    assert linked_alert == alert_id
    claims = verify_link_token(
        harness.settings.link_verifying_secrets,
        token,
        purpose=ACKNOWLEDGE_LINK_PURPOSE,
        now=utcnow(),
    )
    assert (claims.subject, claims.recipient) == (alert_id, to)


async def test_alert_raised_before_the_directory_reaches_the_co_chairs_once_they_register(
    harness: Harness, smtp_server: MailSink
) -> None:
    payload = alert_raised(raised_by="PH", affected=["MY"])
    alert_id = payload.alert.alert_id
    event = await raise_alert(harness, payload)
    assert await harness.deliveries(alert_id=alert_id) == [], "a fresh system knows nobody yet"

    await harness.register_members(standard_directory())
    # AU: ana, ben + inbox; ID: dewi + inbox; affected MY: mei + inbox. Not the raiser PH,
    # not AU's inactive focal point, not the senior officials (no escalation asked for them).
    deliveries = await delivered(harness, alert_id, 7)
    assert {d.source_event_id for d in deliveries} == {str(event.id)}
    assert sorted((d.channel, d.recipient, d.reason) for d in deliveries) == [
        ("email", "ana@au.example.org", "co_chair"),
        ("email", "ben@au.example.org", "co_chair"),
        ("email", "dewi@id.example.org", "co_chair"),
        ("email", "mei@my.example.org", "affected_member"),
        ("inbox", "member:AU", "co_chair"),
        ("inbox", "member:ID", "co_chair"),
        ("inbox", "member:MY", "affected_member"),
    ]
    assert mails_by_recipient(smtp_server, alert_id) == {
        "ana@au.example.org": 1,
        "ben@au.example.org": 1,
        "dewi@id.example.org": 1,
        "mei@my.example.org": 1,
    }
    for co_chair in ("ana@au.example.org", "ben@au.example.org", "dewi@id.example.org"):
        assert_acknowledge_link(harness, smtp_server, alert_id, co_chair)
    [affected] = [
        m for m in smtp_server.for_alert(alert_id) if m.recipients == ["mei@my.example.org"]
    ]
    assert LINK.findall(affected.text) == []
    inbox = await harness.client.get("/v1/inbox", headers=harness.tokens.co_chair("AU"))
    assert alert_id in [item["alert_id"] for item in inbox.json()["items"]]
    await close_alert(harness, payload)


async def test_focal_point_added_to_a_co_chair_during_an_open_alert_gets_exactly_one_email(
    harness: Harness, smtp_server: MailSink
) -> None:
    await ensure_directory(harness)
    payload = alert_raised(raised_by="PH", affected=["MY"])
    alert_id = payload.alert.alert_id
    event = await raise_alert(harness, payload)
    before = await delivered(harness, alert_id, 7)

    async with focal_point_added(harness, "AU", "cara"):
        after = await delivered(harness, alert_id, 8)
    [added] = [d for d in after if d.id not in {b.id for b in before}]
    assert (added.channel, added.recipient, added.reason) == (
        "email",
        "cara@au.example.org",
        "co_chair",
    )
    assert added.source_event_id == str(event.id)
    assert added.acknowledge_link
    assert_acknowledge_link(harness, smtp_server, alert_id, "cara@au.example.org")
    assert mails_by_recipient(smtp_server, alert_id) == {
        "ana@au.example.org": 1,
        "ben@au.example.org": 1,
        "cara@au.example.org": 1,
        "dewi@id.example.org": 1,
        "mei@my.example.org": 1,
    }
    await close_alert(harness, payload)


async def test_senior_official_added_after_a_wide_escalation_is_told_and_the_others_not_again(
    harness: Harness, smtp_server: MailSink
) -> None:
    await ensure_directory(harness)
    raised = alert_raised(raised_by="PH", affected=[])
    alert_id = raised.alert.alert_id
    await raise_alert(harness, raised)
    escalated = raised.alert.model_copy(
        update={"version": 2, "status": AlertStatus.escalated, "escalation_level": 1}
    )
    await harness.publish(
        AlertEscalated(
            alert=escalated,
            actor=raised.actor,
            occurred_at=utcnow(),
            level=1,
            reason="manual",
            notify_senior_officials=True,
        ),
        subject=alert_id,
    )
    acknowledged = await harness.publish(
        AlertAcknowledged(
            alert=escalated.model_copy(update={"version": 3, "status": AlertStatus.acknowledged}),
            actor=raised.actor,
            occurred_at=utcnow(),
        ),
        subject=alert_id,
    )
    # Each step: 3 co-chair focal points and 2 inboxes; the escalation also both seniors.
    before = await delivered(harness, alert_id, 17)

    async with focal_point_added(harness, "AU", "sam", FocalPointRole.senior_official):
        after = await delivered(harness, alert_id, 18)
    [added] = [d for d in after if d.id not in {b.id for b in before}]
    assert (added.channel, added.recipient, added.reason) == (
        "email",
        "sam@au.example.org",
        "senior_official",
    )
    # Told of the alert as it stands now: acknowledged, so without an acknowledge link.
    assert added.source_event_id == str(acknowledged.id)
    assert not added.acknowledge_link
    [mail] = [m for m in smtp_server.for_alert(alert_id) if m.recipients == [added.recipient]]
    assert mail.message["X-Bali-Event-Type"] == "alert.acknowledged"
    assert LINK.findall(mail.text) == []
    # The seniors already told (of the escalation) are not told again.
    assert mails_by_recipient(smtp_server, alert_id)["senior@au.example.org"] == 1
    await close_alert(harness, raised)


async def test_closed_or_day_old_alerts_are_not_planned_for_a_new_focal_point(
    harness: Harness, smtp_server: MailSink
) -> None:
    await ensure_directory(harness)
    still_open = alert_raised(raised_by="PH", affected=[])
    resolved = alert_raised(raised_by="PH", affected=[])
    withdrawn = alert_raised(raised_by="PH", affected=[])
    day_old = alert_raised(raised_by="PH", affected=[])
    day_old = day_old.model_copy(
        update={
            "alert": day_old.alert.model_copy(
                update={"raised_at": datetime.now(UTC) - timedelta(hours=25)}
            )
        }
    )
    for payload in (still_open, resolved, withdrawn, day_old):
        await raise_alert(harness, payload)
    await close_alert(harness, resolved)
    await close_alert(harness, withdrawn, AlertStatus.withdrawn)

    async with focal_point_added(harness, "ID", "dian"):
        # The member update is applied and its catch-up committed with it: the rows are final.
        for payload in (resolved, withdrawn, day_old):
            planned = await harness.deliveries(alert_id=payload.alert.alert_id)
            assert "dian@id.example.org" not in {d.recipient for d in planned}
        deliveries = await delivered(harness, still_open.alert.alert_id, 6)
    [caught_up] = [d for d in deliveries if d.recipient == "dian@id.example.org"]
    assert mails_by_recipient(smtp_server, still_open.alert.alert_id)["dian@id.example.org"] == 1
    assert caught_up.reason == "co_chair"
    await close_alert(harness, still_open)
    await close_alert(harness, day_old)


async def test_member_event_delivered_again_plans_nothing_more(
    harness: Harness, smtp_server: MailSink
) -> None:
    await ensure_directory(harness)
    payload = alert_raised(raised_by="PH", affected=[])
    alert_id = payload.alert.alert_id
    await raise_alert(harness, payload)
    async with focal_point_added(harness, "AU", "eko") as (_, update):
        planned = await delivered(harness, alert_id, 6)
        assert "eko@au.example.org" in {d.recipient for d in planned}

        # Kafka redelivers the very event (the inbox drops it) ...
        duplicates = harness.runtime.metrics.events_duplicate.labels("notifications.planning")
        seen_before = duplicates._value.get()
        await harness.publish(update.payload(), subject="AU", event=update)

        async def dropped() -> bool:
            return bool(duplicates._value.get() > seen_before)

        await eventually(dropped)
        # ... and the directory publishes the same version again as a new event (the
        # projection drops it: not newer than what it holds).
        republished = await harness.publish(update.payload(), subject="AU")

        async def applied() -> bool:
            async with harness.runtime.sessions() as session:
                key = ("notifications.planning", str(republished.id))
                return await session.get(InboxEntry, key) is not None

        await eventually(applied)
        again = await delivered(harness, alert_id, 6)
        assert {d.id for d in again} == {d.id for d in planned}
        # Even asked directly, the catch-up finds nobody left to tell.
        async with transaction(harness.runtime.sessions) as session:
            added = await planning.plan_missed_alerts(
                session=session, member_id="AU", window=timedelta(days=1)
            )
        assert added == 0
    assert mails_by_recipient(smtp_server, alert_id)["eko@au.example.org"] == 1
    await close_alert(harness, payload)


async def test_affected_member_registered_after_its_alert_hears_of_that_alert_only(
    harness: Harness, smtp_server: MailSink
) -> None:
    await ensure_directory(harness)
    theirs = alert_raised(raised_by="PH", affected=["TL"])
    other = alert_raised(raised_by="PH", affected=["MY"])
    await raise_alert(harness, theirs)
    await raise_alert(harness, other)
    timor_leste = member("TL", "Timor-Leste", focal_point("TL", "tomas"))
    await harness.publish(timor_leste, subject="TL")
    await harness.members_known("TL")
    deliveries = await delivered(harness, theirs.alert.alert_id, 7)
    told = sorted((d.channel, d.recipient, d.reason) for d in deliveries if d.member_id == "TL")
    assert told == [
        ("email", "tomas@tl.example.org", "affected_member"),
        ("inbox", "member:TL", "affected_member"),
    ]
    assert mails_by_recipient(smtp_server, theirs.alert.alert_id)["tomas@tl.example.org"] == 1
    others = await delivered(harness, other.alert.alert_id, 7)
    assert "TL" not in {d.member_id for d in others}
    await close_alert(harness, theirs)
    await close_alert(harness, other)


async def someone_waits_for_the_routing_lock(harness: Harness) -> bool:
    async with harness.runtime.sessions() as session:
        waiting = await session.exec(
            select(func.count())
            .select_from(text("pg_locks"))
            .where(text("locktype = 'advisory' AND NOT granted"))
        )
        return int(waiting.one()) > 0


@pytest.mark.postgres
async def test_alert_planned_while_its_affected_member_registers_reaches_that_member(
    harness: Harness,
) -> None:
    """Each transaction reads what the other writes: whichever comes second waits its turn.

    Without that, each would miss the other's uncommitted rows and the member
    would never hear of the alert (SQLite's single connection serializes anyway).
    """
    await ensure_directory(harness)
    sessions: SessionFactory = harness.runtime.sessions
    hub = harness.parts.hub

    async def register(member_id: str) -> int:
        async with transaction(sessions) as session:
            # Planned outside a consumer: wake the dispatcher after the commit as one would.
            hub.wake_after_commit(session)
            snapshot = member(member_id, member_id, focal_point(member_id, "fp"))
            assert await directory.apply_snapshot(session=session, snapshot=snapshot)
            return await planning.plan_missed_alerts(
                session=session, member_id=member_id, window=timedelta(days=1)
            )

    async def plan(payload: AlertRaised) -> int:
        event = CloudEvent.of(payload, source="/bali/test-upstream", subject="race")
        async with transaction(sessions) as session:
            hub.wake_after_commit(session)
            return await planning.plan_for_alert(
                session=session, event=event, payload=payload, senders=harness.parts.senders
            )

    def waits_its_turn(task: asyncio.Task[int]) -> Callable[[], Awaitable[bool]]:
        """Until the task is blocked on the routing lock, or (the failure) ran to its end."""

        async def settled() -> bool:
            return task.done() or await someone_waits_for_the_routing_lock(harness)

        return settled

    # The alert is planned first; the member's registration waits for it to commit.
    first = alert_raised(raised_by="PH", affected=["WS"])
    event = CloudEvent.of(first, source="/bali/test-upstream", subject="race")
    async with transaction(sessions) as session:
        hub.wake_after_commit(session)
        assert await planning.plan_for_alert(
            session=session, event=event, payload=first, senders=harness.parts.senders
        )
        registering = asyncio.create_task(register("WS"))
        await eventually(waits_its_turn(registering))
        assert not registering.done(), "the member's catch-up ran before the alert committed"
    assert await registering == 2, "the catch-up saw the alert once it was committed"

    # The member registers first; the alert's planning waits for it to commit.
    second = alert_raised(raised_by="PH", affected=["FJ"])
    async with transaction(sessions) as session:
        hub.wake_after_commit(session)
        snapshot = member("FJ", "FJ", focal_point("FJ", "fp"))
        assert await directory.apply_snapshot(session=session, snapshot=snapshot)
        assert (
            await planning.plan_missed_alerts(
                session=session, member_id="FJ", window=timedelta(days=1)
            )
            == 0
        )
        alert_planning = asyncio.create_task(plan(second))
        await eventually(waits_its_turn(alert_planning))
        assert not alert_planning.done(), "the alert was planned before the member committed"
    await alert_planning

    for payload, member_id in ((first, "WS"), (second, "FJ")):
        deliveries = await harness.deliveries(alert_id=payload.alert.alert_id)
        told = sorted((d.channel, d.recipient) for d in deliveries if d.member_id == member_id)
        assert told == [
            ("email", f"fp@{member_id.lower()}.example.org"),
            ("inbox", f"member:{member_id}"),
        ]
        await close_alert(harness, payload)
