"""Escalation timers are rows: they survive restarts and fire exactly once across replicas."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from bali_common.events import STREAM_TOPICS, Stream
from bali_common.events.alerts import AlertStatus, Severity
from bali_common.messaging.outbox import OutboxMessage
from bali_consultation.alerts import escalation
from bali_consultation.alerts.models import Alert, AlertTimelineEntry, EscalationTimer
from bali_consultation.settings import ConsultationSettings, EscalationStep
from bali_devkit.testing.plugin import SettingsFactory, eventually, read_topic
from consultation_testkit import FakeClock, Service, consultation_settings, started
from sqlmodel import col, func, select


async def fire(service: Service, *, replica: str = "test") -> list[tuple[str, int, bool]]:
    fired = await escalation.fire_due(
        sessions=service.sessions, now=service.clock(), replica=replica
    )
    return [(f.alert_id, f.level, f.notify_senior_officials) for f in fired]


def mine(fired: list[tuple[str, int, bool]], alert_id: str) -> list[tuple[int, bool]]:
    return [(level, senior) for fired_id, level, senior in fired if fired_id == alert_id]


async def escalations_staged(service: Service, alert_ids: list[str]) -> int:
    async with service.sessions() as session:
        staged = await session.exec(
            select(func.count())
            .select_from(OutboxMessage)
            .where(
                OutboxMessage.event_type == "alert.escalated",
                col(OutboxMessage.key).in_(alert_ids),
            )
        )
        return staged.one()


async def test_unacknowledged_alert_escalates_per_severity_policy_once_per_step(
    service: Service,
) -> None:
    alert = await service.raise_alert(severity="Extreme")
    assert mine(await fire(service), alert["id"]) == []
    service.clock.advance(minutes=10)
    assert mine(await fire(service), alert["id"]) == [(1, False)]
    assert mine(await fire(service), alert["id"]) == [], "a fired timer never fires again"
    service.clock.advance(minutes=20)
    assert mine(await fire(service), alert["id"]) == [(2, True)]
    service.clock.advance(days=3)
    assert mine(await fire(service), alert["id"]) == []
    current = await service.get(alert["id"])
    assert (current["status"], current["escalation_level"]) == ("escalated", 2)
    timeline = await service.timeline(alert["id"])
    escalated = [e for e in timeline if e["kind"] == "escalated"]
    assert [e["details"]["reason"] for e in escalated] == ["unacknowledged_timeout"] * 2
    assert escalated[1]["details"]["notify_senior_officials"] is True
    assert escalated[0]["actor"]["subject"] == "system:escalation-policy"
    acknowledged = await service.step(alert["id"], "acknowledge")
    assert acknowledged.json()["status"] == "acknowledged"


async def test_acknowledgement_and_withdrawal_cancel_pending_escalations(service: Service) -> None:
    acknowledged = await service.raise_alert(severity="Extreme")
    withdrawn = await service.raise_alert(severity="Extreme")
    await service.step(acknowledged["id"], "acknowledge")
    await service.step(withdrawn["id"], "withdraw", headers=service.auth("MY"))
    service.clock.advance(hours=1)
    fired = await fire(service)
    assert mine(fired, acknowledged["id"]) == mine(fired, withdrawn["id"]) == []
    async with service.sessions() as session:
        timers = (
            await session.exec(
                select(EscalationTimer).where(
                    col(EscalationTimer.alert_id).in_([acknowledged["id"], withdrawn["id"]])
                )
            )
        ).all()
    assert len(timers) == 4
    assert all(t.cancelled_at is not None and t.fired_at is None for t in timers)


async def test_raising_severity_of_an_unacknowledged_alert_follows_the_new_policy(
    service: Service,
) -> None:
    alert = await service.raise_alert(severity="Moderate")
    service.clock.advance(minutes=15)
    assert mine(await fire(service), alert["id"]) == []
    changed = await service.client.post(
        f"/v1/alerts/{alert['id']}/updates",
        json={"text": "Boats taking water", "severity": "Extreme"},
        headers={**service.auth("MY"), "If-Match": '"v1"'},
    )
    assert changed.status_code == 200
    assert mine(await fire(service), alert["id"]) == [(1, False)], "the 10-minute step is overdue"
    service.clock.advance(minutes=16)
    assert mine(await fire(service), alert["id"]) == [(2, True)]
    service.clock.advance(hours=5)
    assert mine(await fire(service), alert["id"]) == [], "the old Moderate step was cancelled"


async def test_reopened_unacknowledged_alert_escalates_again_from_its_reopening(
    service: Service,
) -> None:
    alert = await service.raise_alert(severity="Extreme")
    await service.step(alert["id"], "withdraw", headers=service.auth("MY"))
    service.clock.advance(hours=1)
    reopened = await service.step(alert["id"], "reopen", headers=service.auth("MY"))
    assert reopened.json()["status"] == "raised"
    assert mine(await fire(service), alert["id"]) == []
    service.clock.advance(minutes=10)
    assert mine(await fire(service), alert["id"]) == [(1, False)]


async def test_manual_escalation_by_a_co_chair_is_an_escalation_event(service: Service) -> None:
    alert = await service.raise_alert(severity="Minor")
    response = await service.step(
        alert["id"], "escalate", {"reason": "Flag state silent", "notify_senior_officials": True}
    )
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["escalation_level"]) == ("escalated", 1)
    assert await service.staged_events(alert["id"]) == ["alert.raised", "alert.escalated"]
    metrics = (await service.client.get("/metrics")).text
    assert 'bali_alert_escalations_total{reason="manual"}' in metrics


# --- restarts and replicas: several service instances on one database -------------------------


async def _escalation_count(service: Service, alert_id: str) -> int:
    async with service.sessions() as session:
        rows = await session.exec(
            select(func.count())
            .select_from(AlertTimelineEntry)
            .where(AlertTimelineEntry.alert_id == alert_id, AlertTimelineEntry.kind == "escalated")
        )
        return rows.one()


async def test_timer_due_while_the_service_was_down_fires_once_after_restart(
    make_settings: SettingsFactory,
) -> None:
    settings = await consultation_settings(make_settings)
    clock = FakeClock()
    async with started(settings, clock, wait_for_messaging=False) as first_life:
        alert = await first_life.raise_alert(severity="Extreme")
    clock.advance(minutes=12)  # the service is down when the first step falls due
    async with started(settings, clock) as second_life:
        await eventually(lambda: _has_escalations(second_life, alert["id"], 1))
        assert await fire(second_life) == []
        await eventually(second_life.outbox_drained)
    async with started(settings, clock, wait_for_messaging=False) as third_life:
        assert await fire(third_life) == [], "nothing fires twice across restarts"
        assert await _escalation_count(third_life, alert["id"]) == 1
        assert await escalations_staged(third_life, [alert["id"]]) == 1
        async with third_life.sessions() as session:
            total = (await session.exec(select(func.count()).select_from(OutboxMessage))).one()
    events = await read_topic(settings, STREAM_TOPICS[Stream.alerts], expected=total)
    assert [e.type for e in events] == ["alert.raised", "alert.escalated"]
    assert events[1].data["level"] == 1


async def _has_escalations(service: Service, alert_id: str, count: int) -> bool:
    return await _escalation_count(service, alert_id) >= count


async def test_two_replicas_polling_one_database_fire_each_timer_exactly_once(
    make_settings: SettingsFactory,
) -> None:
    settings = await consultation_settings(make_settings, escalation_poll_interval_s=0.01)
    clock = FakeClock()
    async with (
        started(settings, clock, wait_for_messaging=False) as replica_a,
        started(settings, clock, wait_for_messaging=False) as replica_b,
    ):
        alerts = [(await replica_a.raise_alert(severity="Extreme"))["id"] for _ in range(8)]
        clock.advance(minutes=31)  # both steps of every alert fall due at once, in both loops
        for alert_id in alerts:
            await eventually(lambda alert_id=alert_id: _has_escalations(replica_b, alert_id, 2))
        raced = await asyncio.gather(fire(replica_a, replica="a"), fire(replica_b, replica="b"))
        assert raced == [[], []]
        for alert_id in alerts:
            assert await _escalation_count(replica_a, alert_id) == 2
        assert await escalations_staged(replica_a, alerts) == 16
        async with replica_a.sessions() as session:
            timers = (
                await session.exec(
                    select(EscalationTimer).where(col(EscalationTimer.alert_id).in_(alerts))
                )
            ).all()
        assert len(timers) == 16
        assert all(t.fired_at is not None for t in timers)


async def test_concurrent_firing_calls_on_two_instances_split_the_timers_without_overlap(
    make_settings: SettingsFactory,
) -> None:
    settings = await consultation_settings(make_settings, escalation_loop_enabled=False)
    clock = FakeClock()
    async with (
        started(settings, clock, wait_for_messaging=False) as replica_a,
        started(settings, clock, wait_for_messaging=False) as replica_b,
    ):
        alerts = [(await replica_b.raise_alert(severity="Extreme"))["id"] for _ in range(10)]
        clock.advance(minutes=10)
        fired_a, fired_b, fired_a2, fired_b2 = await asyncio.gather(
            fire(replica_a, replica="a"),
            fire(replica_b, replica="b"),
            fire(replica_a, replica="a2"),
            fire(replica_b, replica="b2"),
        )
        together = fired_a + fired_b + fired_a2 + fired_b2
        assert sorted(alert_id for alert_id, _, _ in together) == sorted(alerts)
        assert {level for _, level, _ in together} == {1}
        assert await escalations_staged(replica_a, alerts) == 10


# --- planning and raising the level, without a service --------------------------------------------

ANCHOR = datetime(2026, 11, 28, 16, 0, tzinfo=UTC)
POLICY = ConsultationSettings(
    escalation_policy={
        Severity.extreme: [
            EscalationStep(after_minutes=10),
            EscalationStep(after_minutes=30, notify_senior_officials=True),
        ],
        Severity.minor: [],
    }
)


def unacknowledged(severity: Severity, **fields: Any) -> Alert:
    defaults = {
        "id": "alert-1",
        "status": AlertStatus.raised.value,
        "severity": severity.value,
        "escalation_level": 0,
        "escalation_plan": 2,
        "escalation_anchor_at": ANCHOR,
    }
    return Alert(**{**defaults, **fields})


def test_a_plan_has_one_timer_per_policy_step_due_from_its_anchor() -> None:
    now = ANCHOR + timedelta(minutes=3)
    timers = escalation.plan(alert=unacknowledged(Severity.extreme), settings=POLICY, now=now)
    assert [(t.step, t.due_at, t.notify_senior_officials) for t in timers] == [
        (1, ANCHOR + timedelta(minutes=10), False),
        (2, ANCHOR + timedelta(minutes=30), True),
    ]
    assert {(t.alert_id, t.plan, t.created_at) for t in timers} == {("alert-1", 2, now)}
    assert all(t.fired_at is None and t.cancelled_at is None for t in timers)
    assert len({t.id for t in timers}) == 2


def test_a_plan_leaves_out_fired_steps_and_severities_without_policy() -> None:
    replanned = escalation.plan(
        alert=unacknowledged(Severity.extreme),
        settings=POLICY,
        now=ANCHOR,
        skip_steps=frozenset({1}),
    )
    assert [t.step for t in replanned] == [2]
    assert escalation.plan(alert=unacknowledged(Severity.minor), settings=POLICY, now=ANCHOR) == []


def test_a_plan_reads_a_naive_anchor_as_utc() -> None:
    naive = unacknowledged(Severity.extreme, escalation_anchor_at=ANCHOR.replace(tzinfo=None))
    timers = escalation.plan(alert=naive, settings=POLICY, now=ANCHOR)
    assert timers[0].due_at == ANCHOR + timedelta(minutes=10)


def test_raising_the_level_escalates_an_unacknowledged_alert_only() -> None:
    raised = unacknowledged(Severity.extreme)
    change = escalation.raise_level(alert=raised, reason="manual", notify=True, note="Flag state")
    assert (raised.status, raised.escalation_level) == ("escalated", 1)
    assert change.details == {
        "level": 1,
        "reason": "manual",
        "note": "Flag state",
        "notify_senior_officials": True,
    }
    acknowledged = unacknowledged(Severity.extreme, status=AlertStatus.acknowledged.value)
    escalation.raise_level(alert=acknowledged, reason="manual", notify=False)
    assert (acknowledged.status, acknowledged.escalation_level) == ("acknowledged", 1)
