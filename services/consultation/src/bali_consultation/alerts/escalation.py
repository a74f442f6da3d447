"""Escalation timers: one row per policy step, cancelled by acknowledgement, each fired once."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from uuid import uuid4

from bali_common.auth import Principal
from bali_common.db import SessionFactory, as_utc
from bali_common.events.alerts import AlertEscalated, AlertStatus, Severity
from bali_common.runtime import ServiceRuntime
from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_consultation.alerts import steps
from bali_consultation.alerts.models import UNACKNOWLEDGED_STATUSES, Alert, EscalationTimer
from bali_consultation.alerts.steps import Change, Step
from bali_consultation.parts import ConsultationParts
from bali_consultation.settings import ConsultationSettings

log = logging.getLogger(__name__)

#: Who acts when a timer fires: no person, the escalation policy.
ESCALATION_POLICY_PRINCIPAL = Principal(
    subject="system:escalation-policy", name="Escalation policy"
)


def plan(
    *,
    alert: Alert,
    settings: ConsultationSettings,
    now: datetime,
    skip_steps: frozenset[int] = frozenset(),
) -> list[EscalationTimer]:
    """One timer row per policy step of the alert's severity, due from the plan's anchor."""
    anchor = as_utc(alert.escalation_anchor_at)
    return [
        EscalationTimer(
            id=str(uuid4()),
            alert_id=alert.id,
            plan=alert.escalation_plan,
            step=number,
            due_at=anchor + timedelta(minutes=step.after_minutes),
            notify_senior_officials=step.notify_senior_officials,
            created_at=now,
        )
        for number, step in enumerate(settings.escalation_steps(Severity(alert.severity)), start=1)
        if number not in skip_steps
    ]


async def cancel_pending(*, session: AsyncSession, alert_id: str, now: datetime) -> None:
    await session.exec(
        update(EscalationTimer)
        .where(
            col(EscalationTimer.alert_id) == alert_id,
            col(EscalationTimer.fired_at).is_(None),
            col(EscalationTimer.cancelled_at).is_(None),
        )
        .values(cancelled_at=now)
    )


async def replan(
    *, session: AsyncSession, alert: Alert, settings: ConsultationSettings, now: datetime
) -> None:
    """Pending steps follow the new severity's policy; steps already fired are not repeated."""
    await cancel_pending(session=session, alert_id=alert.id, now=now)
    fired = await session.exec(
        select(EscalationTimer.step).where(
            EscalationTimer.alert_id == alert.id,
            EscalationTimer.plan == alert.escalation_plan,
            col(EscalationTimer.fired_at).is_not(None),
        )
    )
    session.add_all(
        plan(alert=alert, settings=settings, now=now, skip_steps=frozenset(fired.all()))
    )


def raise_level(*, alert: Alert, reason: str, notify: bool, **details: Any) -> Change:
    """The level rises; an unacknowledged alert becomes escalated. `details` go on the
    timeline besides level and reason; a co-chair's `note` is in the event too."""
    alert.escalation_level += 1
    if AlertStatus(alert.status) in UNACKNOWLEDGED_STATUSES:
        alert.status = AlertStatus.escalated.value
    level = alert.escalation_level
    return Change(
        {"level": level, "reason": reason, **details, "notify_senior_officials": notify},
        partial(
            AlertEscalated,
            level=level,
            reason=reason,
            notify_senior_officials=notify,
            note=details.get("note"),
        ),
    )


@dataclass(frozen=True)
class FiredEscalation:
    alert_id: str
    level: int
    step: int
    notify_senior_officials: bool


def default_replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


async def fire_due(
    *,
    sessions: SessionFactory,
    now: datetime,
    batch_size: int = 100,
    replica: str | None = None,
) -> list[FiredEscalation]:
    """Fire every timer due at `now`, each exactly once however many replicas call this.

    Each timer fires in its own transaction whose decisive statement is
    `UPDATE ... SET fired_at WHERE fired_at IS NULL AND cancelled_at IS NULL`: only one
    caller sees one row changed, on SQLite (writers serialised by the database lock) and
    on PostgreSQL (the second UPDATE waits for the first and re-checks the condition).
    """
    replica = replica or default_replica_id()
    async with sessions() as session:
        due = (
            await session.exec(
                select(EscalationTimer.id, EscalationTimer.alert_id)
                .where(
                    col(EscalationTimer.fired_at).is_(None),
                    col(EscalationTimer.cancelled_at).is_(None),
                    col(EscalationTimer.due_at) <= now,
                )
                .order_by(col(EscalationTimer.due_at), col(EscalationTimer.id))
                .limit(batch_size)
            )
        ).all()
    fired: list[FiredEscalation] = []
    for timer_id, alert_id in due:
        outcome = await _fire_timer(
            sessions, timer_id=timer_id, alert_id=alert_id, now=now, replica=replica
        )
        if outcome is not None:
            fired.append(outcome)
    return fired


async def _fire_timer(
    sessions: SessionFactory, *, timer_id: str, alert_id: str, now: datetime, replica: str
) -> FiredEscalation | None:
    async with sessions() as session:
        # Lock order alert -> timers, as in acknowledge, so the two never deadlock.
        alert = await session.get(Alert, alert_id, with_for_update=True)
        claimed = await session.exec(
            update(EscalationTimer)
            .where(
                col(EscalationTimer.id) == timer_id,
                col(EscalationTimer.fired_at).is_(None),
                col(EscalationTimer.cancelled_at).is_(None),
            )
            .values(fired_at=now, claimed_by=replica)
        )
        if claimed.rowcount != 1 or alert is None:
            await session.rollback()
            return None
        # On SQLite the read above may predate the write lock this UPDATE took: read again.
        await session.refresh(alert)
        timer = await session.get(EscalationTimer, timer_id)
        assert timer is not None
        if AlertStatus(alert.status) not in UNACKNOWLEDGED_STATUSES:
            # Acknowledgement and closing cancel timers in their transaction; this only
            # guards against a timer left behind, which is cancelled rather than fired.
            timer.fired_at = None
            timer.cancelled_at = now
            session.add(timer)
            await session.commit()
            return None
        change = raise_level(
            alert=alert,
            reason="unacknowledged_timeout",
            notify=timer.notify_senior_officials,
            step=timer.step,
        )
        step = Step(alert_id, ESCALATION_POLICY_PRINCIPAL, now, source=replica)
        await steps.commit(session=session, alert=alert, step=step, kind="escalated", change=change)
        return FiredEscalation(
            alert_id=alert_id,
            level=alert.escalation_level,
            step=timer.step,
            notify_senior_officials=timer.notify_senior_officials,
        )


async def timer_loop(runtime: ServiceRuntime) -> None:
    """Timers are rows: a restarted or second replica picks up exactly what is due."""
    parts = runtime.parts_as(ConsultationParts)
    settings = parts.settings
    if not settings.escalation_loop_enabled:
        return
    replica = f"{settings.relay_id or default_replica_id()}:escalations"
    while True:
        try:
            fired = await fire_due(
                sessions=runtime.sessions,
                now=parts.now(),
                batch_size=settings.escalation_batch_size,
                replica=replica,
            )
            parts.metrics.escalations.labels("unacknowledged_timeout").inc(len(fired))
        except Exception:
            log.exception("escalation cycle failed; retrying")
        await asyncio.sleep(settings.escalation_poll_interval_s)
