"""Use cases of the consultation service: raise alerts, drive them to resolution, fire escalations.

One use case is one transaction: it changes the alert, appends the timeline row,
stages the `alert.*` event in the outbox and the audit row, then commits.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol
from uuid import uuid4

from bali_common.auth import Principal, Role
from bali_common.db import SessionFactory, as_utc
from bali_common.events.alerts import (
    AlertAcknowledged,
    AlertConsultationConvened,
    AlertEscalated,
    AlertEvent,
    AlertOutreachLogged,
    AlertRaised,
    AlertReopened,
    AlertResolved,
    AlertStatus,
    AlertSummary,
    AlertUpdated,
    AlertWithdrawn,
    Certainty,
    Sensitivity,
    Severity,
    SituationType,
    Urgency,
)
from bali_common.events.members import MemberSnapshot
from bali_common.events.shared import Actor
from bali_common.http.audit import record_audit
from bali_common.http.concurrency import check_version
from bali_common.http.pagination import PageRequest, keyset_page
from bali_common.links import (
    ACKNOWLEDGE_LINK_PURPOSE,
    ExpiredLinkToken,
    InvalidLinkToken,
    LinkClaims,
    verify_link_token,
)
from bali_common.messaging.outbox import stage_event
from bali_common.problems import ProblemError, conflict, forbidden, illegal_transition, not_found
from pydantic import BaseModel
from sqlalchemy import delete, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_consultation.cap import CapContext
from bali_consultation.models import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    UNACKNOWLEDGED_STATUSES,
    Alert,
    AlertAffectedMember,
    AlertCreate,
    AlertTimelineEntry,
    ConsultationCreate,
    DirectoryMember,
    EscalationCreate,
    EscalationTimer,
    OutreachCreate,
    ReasonCreate,
    ResolutionCreate,
    SituationUpdateCreate,
    UsedLinkToken,
    optional_utc,
)
from bali_consultation.settings import ConsultationSettings

Clock = Callable[[], datetime]

#: Who acts when a timer fires: no person, the escalation policy.
ESCALATION_POLICY_PRINCIPAL = Principal(
    subject="system:escalation-policy", name="Escalation policy"
)

log = logging.getLogger(__name__)


# --- who may see and do what --------------------------------------------------------------------


def is_co_chair(principal: Principal) -> bool:
    """Co-chair actions are authorised by the token role (admin passes as everywhere)."""
    return principal.allows(Role.co_chair)


def can_see(alert: Alert, principal: Principal) -> bool:
    """Restricted alerts: only the co-chairs, the raising member and the affected members."""
    if alert.sensitivity == Sensitivity.public or is_co_chair(principal):
        return True
    member = principal.member_id
    return member is not None and (
        member == alert.raised_by_member or member in alert.affected_members
    )


def _is_raiser(alert: Alert, principal: Principal) -> bool:
    return principal.member_id is not None and principal.member_id == alert.raised_by_member


def not_visible(alert_id: str) -> ProblemError:
    """The same answer whether the alert does not exist or is hidden from the caller."""
    return not_found(f"No alert {alert_id} is visible to you.")


def cannot_become(action: str, status: str, hint: str = "") -> ProblemError:
    return illegal_transition(
        f"An alert that is {status} cannot be {action}.{' ' + hint if hint else ''}"
    )


def actor_of(principal: Principal) -> Actor:
    return Actor(subject=principal.subject, member_id=principal.member_id, name=principal.name)


# --- reading ------------------------------------------------------------------------------------


async def get_visible_alert(
    *, session: AsyncSession, alert_id: str, principal: Principal, for_update: bool = False
) -> Alert:
    alert = await session.get(Alert, alert_id, with_for_update=for_update or None)
    if alert is None or not can_see(alert, principal):
        raise not_visible(alert_id)
    return alert


async def get_public_or_visible_alert(
    *, session: AsyncSession, alert_id: str, principal: Principal | None
) -> Alert:
    """For documents public alerts publish without login (CAP): restricted ones need a caller."""
    alert = await session.get(Alert, alert_id)
    if alert is None:
        raise not_visible(alert_id)
    if alert.sensitivity == Sensitivity.public:
        return alert
    if principal is None or not can_see(alert, principal):
        raise not_visible(alert_id)
    return alert


class AlertFilters(BaseModel):
    status: AlertStatus | None = None
    open: bool | None = None
    severity: Severity | None = None
    situation_type: SituationType | None = None
    sensitivity: Sensitivity | None = None
    raised_by_member: str | None = None
    affected_member: str | None = None


async def list_alerts(
    *, session: AsyncSession, principal: Principal, filters: AlertFilters, page: PageRequest
) -> tuple[list[Alert], str | None]:
    """Alerts the caller may see, newest first, one page at a time."""
    query = select(Alert)
    if not is_co_chair(principal):
        visible = [col(Alert.sensitivity) == Sensitivity.public.value]
        if principal.member_id is not None:
            visible.append(col(Alert.raised_by_member) == principal.member_id)
            visible.append(col(Alert.id).in_(_affecting(principal.member_id)))
        query = query.where(or_(*visible))
    if filters.status is not None:
        query = query.where(col(Alert.status) == filters.status.value)
    if filters.open is not None:
        statuses = OPEN_STATUSES if filters.open else CLOSED_STATUSES
        query = query.where(col(Alert.status).in_([s.value for s in statuses]))
    if filters.severity is not None:
        query = query.where(col(Alert.severity) == filters.severity.value)
    if filters.situation_type is not None:
        query = query.where(col(Alert.situation_type) == filters.situation_type.value)
    if filters.sensitivity is not None:
        query = query.where(col(Alert.sensitivity) == filters.sensitivity.value)
    if filters.raised_by_member is not None:
        query = query.where(col(Alert.raised_by_member) == filters.raised_by_member)
    if filters.affected_member is not None:
        query = query.where(col(Alert.id).in_(_affecting(filters.affected_member)))
    listed = await keyset_page(
        session,
        query,
        page=page,
        order_by=[col(Alert.raised_at), col(Alert.id)],
        descending=True,
    )
    return listed.rows, listed.next_cursor


def _affecting(member_id: str) -> Any:
    return select(AlertAffectedMember.alert_id).where(AlertAffectedMember.member_id == member_id)


async def list_timeline(
    *, session: AsyncSession, alert_id: str, principal: Principal, page: PageRequest
) -> tuple[list[AlertTimelineEntry], str | None]:
    await get_visible_alert(session=session, alert_id=alert_id, principal=principal)
    listed = await keyset_page(
        session,
        select(AlertTimelineEntry).where(AlertTimelineEntry.alert_id == alert_id),
        page=page,
        order_by=[col(AlertTimelineEntry.version)],
    )
    return listed.rows, listed.next_cursor


async def public_feed_alerts(*, session: AsyncSession, limit: int) -> list[Alert]:
    query = (
        select(Alert)
        .where(Alert.sensitivity == Sensitivity.public.value)
        .order_by(col(Alert.updated_at).desc(), col(Alert.id).desc())
        .limit(limit)
    )
    return list((await session.exec(query)).all())


async def cap_addresses(
    *, session: AsyncSession, alert: Alert, settings: ConsultationSettings
) -> list[str]:
    """Who a restricted alert's CAP document is for: co-chairs, raising and affected members."""
    co_chairs = await co_chair_member_ids(session=session, settings=settings)
    return sorted({*co_chairs, alert.raised_by_member, *alert.affected_members})


async def member_name(*, session: AsyncSession, member_id: str) -> str | None:
    member = await session.get(DirectoryMember, member_id)
    return None if member is None else member.name


# --- the member directory projection -----------------------------------------------------------


async def upsert_member(*, session: AsyncSession, snapshot: MemberSnapshot) -> bool:
    """Apply a member snapshot unless we already hold that version or a newer one (no commit)."""
    member = await session.get(DirectoryMember, snapshot.member_id, with_for_update=True)
    if member is not None and member.version >= snapshot.version:
        return False
    member = member or DirectoryMember(
        member_id=snapshot.member_id,
        name=snapshot.name,
        kind=snapshot.kind.value,
        version=snapshot.version,
    )
    member.name = snapshot.name
    member.kind = snapshot.kind.value
    member.is_co_chair = snapshot.is_co_chair
    member.active = snapshot.active
    member.focal_points = [fp.model_dump(mode="json") for fp in snapshot.focal_points]
    member.version = snapshot.version
    session.add(member)
    return True


async def co_chair_member_ids(
    *, session: AsyncSession, settings: ConsultationSettings
) -> list[str]:
    """The co-chairs the directory names; the configured ones until the directory has any."""
    rows = await session.exec(
        select(DirectoryMember.member_id).where(
            col(DirectoryMember.is_co_chair).is_(True), col(DirectoryMember.active).is_(True)
        )
    )
    return sorted(rows.all()) or list(settings.co_chair_members)


async def _warn_of_unknown_members(session: AsyncSession, member_ids: Sequence[str]) -> None:
    """An affected member the directory does not know (yet) is kept, never refused.

    The directory here is a projection that can lag behind the activities service
    (a member added minutes ago, or a service that has just started): refusing
    would block an emergency alert. Co-chairs receive every alert and see the id.
    """
    if not member_ids:
        return
    known = set((await session.exec(select(DirectoryMember.member_id))).all())
    unknown = [member for member in member_ids if member not in known]
    if known and unknown:
        log.warning("affected members not (yet) in the directory: %s", ", ".join(unknown))


# --- recording a step ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """Who takes a step on which alert, when, from where, and against which ETag."""

    alert_id: str
    principal: Principal
    now: datetime
    if_match: str | None = None
    source: str | None = None


class EventFactory(Protocol):
    """An `alert.*` event with its own fields bound; recording the step adds the rest."""

    def __call__(
        self, *, alert: AlertSummary, actor: Actor, occurred_at: datetime
    ) -> AlertEvent: ...


@dataclass(frozen=True)
class Change:
    """What a step records besides the alert: the timeline row's details and the event."""

    details: dict[str, Any]
    event: EventFactory


def summary_of(alert: Alert) -> AlertSummary:
    people = alert.people_affected or {}
    return AlertSummary(
        alert_id=alert.id,
        version=alert.version,
        status=AlertStatus(alert.status),
        situation_type=SituationType(alert.situation_type),
        title=alert.title,
        severity=Severity(alert.severity),
        urgency=Urgency(alert.urgency),
        certainty=Certainty(alert.certainty),
        sensitivity=Sensitivity(alert.sensitivity),
        raised_by_member=alert.raised_by_member,
        affected_members=list(alert.affected_members),
        location_names=list(alert.location.get("place_names", [])),
        people_affected=people.get("estimate"),
        raised_at=as_utc(alert.raised_at),
        escalation_level=alert.escalation_level,
        acknowledged_at=optional_utc(alert.acknowledged_at),
        convened_at=optional_utc(alert.convened_at),
        resolved_at=optional_utc(alert.resolved_at),
    )


async def _commit_step(
    session: AsyncSession,
    alert: Alert,
    step: Step,
    *,
    kind: str,
    change: Change,
    first: bool = False,
) -> Alert:
    """Bump the version, append the timeline row, stage event and audit, commit."""
    actor = actor_of(step.principal)
    if not first:
        alert.version += 1
    alert.updated_at = step.now
    session.add(alert)
    session.add(
        AlertTimelineEntry(
            alert_id=alert.id,
            version=alert.version,
            kind=kind,
            at=step.now,
            actor_subject=actor.subject,
            actor_member=actor.member_id,
            actor_name=actor.name,
            details=change.details,
        )
    )
    event = change.event(alert=summary_of(alert), actor=actor, occurred_at=step.now)
    stage_event(session, event, subject=alert.id)
    record_audit(
        session,
        principal=step.principal,
        action=f"alert.{kind}",
        resource_type="alert",
        resource_id=alert.id,
        source=step.source,
        details={"version": alert.version, **change.details},
    )
    await session.commit()
    return alert


# --- escalation timers --------------------------------------------------------------------------


def _plan_escalations(
    session: AsyncSession,
    alert: Alert,
    *,
    settings: ConsultationSettings,
    now: datetime,
    skip_steps: frozenset[int] = frozenset(),
) -> None:
    """One timer row per policy step of the alert's severity, due from the plan's anchor."""
    anchor = as_utc(alert.escalation_anchor_at)
    for number, step in enumerate(settings.escalation_steps(Severity(alert.severity)), start=1):
        if number in skip_steps:
            continue
        session.add(
            EscalationTimer(
                id=str(uuid4()),
                alert_id=alert.id,
                plan=alert.escalation_plan,
                step=number,
                due_at=anchor + timedelta(minutes=step.after_minutes),
                notify_senior_officials=step.notify_senior_officials,
                created_at=now,
            )
        )


async def _cancel_pending_timers(session: AsyncSession, alert_id: str, now: datetime) -> None:
    await session.exec(
        update(EscalationTimer)
        .where(
            col(EscalationTimer.alert_id) == alert_id,
            col(EscalationTimer.fired_at).is_(None),
            col(EscalationTimer.cancelled_at).is_(None),
        )
        .values(cancelled_at=now)
    )


async def _replan_for_new_severity(
    session: AsyncSession, alert: Alert, *, settings: ConsultationSettings, now: datetime
) -> None:
    """Pending steps follow the new severity's policy; steps already fired are not repeated."""
    await _cancel_pending_timers(session, alert.id, now)
    fired = await session.exec(
        select(EscalationTimer.step).where(
            EscalationTimer.alert_id == alert.id,
            EscalationTimer.plan == alert.escalation_plan,
            col(EscalationTimer.fired_at).is_not(None),
        )
    )
    _plan_escalations(session, alert, settings=settings, now=now, skip_steps=frozenset(fired.all()))


@dataclass(frozen=True)
class FiredEscalation:
    alert_id: str
    level: int
    step: int
    notify_senior_officials: bool


def default_replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


async def fire_due_escalations(
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
        change = _escalate(
            alert,
            reason="unacknowledged_timeout",
            notify=timer.notify_senior_officials,
            step=timer.step,
        )
        step = Step(alert_id, ESCALATION_POLICY_PRINCIPAL, now, source=replica)
        await _commit_step(session, alert, step, kind="escalated", change=change)
        return FiredEscalation(
            alert_id=alert_id,
            level=alert.escalation_level,
            step=timer.step,
            notify_senior_officials=timer.notify_senior_officials,
        )


# --- raising and updating -----------------------------------------------------------------------


@dataclass(frozen=True)
class RaiseOutcome:
    alert: Alert
    created: bool = True


async def _open_alert_for(session: AsyncSession, member_id: str, dedup_key: str) -> Alert | None:
    found = await session.exec(
        select(Alert)
        .where(Alert.raised_by_member == member_id, Alert.open_dedup_key == dedup_key)
        .with_for_update()
    )
    return found.first()


async def raise_alert(
    *,
    session: AsyncSession,
    alert_in: AlertCreate,
    principal: Principal,
    settings: ConsultationSettings,
    now: datetime,
    source: str | None = None,
) -> RaiseOutcome:
    """Open a new alert, or add an update to the raiser's open alert with the same dedup key."""
    member = principal.member_id
    if member is None:
        raise forbidden("Raising an alert needs a token that names your member.")
    await _warn_of_unknown_members(session, alert_in.affected_members)
    existing = await _open_alert_for(session, member, alert_in.dedup_key)
    if existing is None:
        try:
            return RaiseOutcome(
                await _open_new_alert(session, alert_in, principal, settings, now, source)
            )
        except IntegrityError:
            # A concurrent raise of the same situation won the unique (member, open key).
            await session.rollback()
            existing = await _open_alert_for(session, member, alert_in.dedup_key)
            if existing is None:
                raise
    alert = await _repeat_raise(session, existing, alert_in, principal, now, source)
    return RaiseOutcome(alert, created=False)


async def _open_new_alert(
    session: AsyncSession,
    alert_in: AlertCreate,
    principal: Principal,
    settings: ConsultationSettings,
    now: datetime,
    source: str | None,
) -> Alert:
    assert principal.member_id is not None
    alert = Alert(
        id=str(uuid4()),
        status=AlertStatus.raised.value,
        situation_type=alert_in.situation_type.value,
        title=alert_in.title,
        description=alert_in.description,
        severity=alert_in.severity.value,
        urgency=alert_in.urgency.value,
        certainty=alert_in.certainty.value,
        sensitivity=alert_in.sensitivity.value,
        raised_by_member=principal.member_id,
        raised_by_subject=principal.subject,
        raised_by_name=principal.name,
        affected_members=list(alert_in.affected_members),
        location=alert_in.location.model_dump(mode="json"),
        people_affected=(
            alert_in.people_affected.model_dump(mode="json") if alert_in.people_affected else None
        ),
        requested_actions=list(alert_in.requested_actions),
        dedup_key=alert_in.dedup_key,
        open_dedup_key=alert_in.dedup_key,
        raised_at=now,
        updated_at=now,
        escalation_anchor_at=now,
    )
    session.add(alert)
    for member in alert.affected_members:
        session.add(AlertAffectedMember(alert_id=alert.id, member_id=member))
    _plan_escalations(session, alert, settings=settings, now=now)
    event = partial(
        AlertRaised,
        description=alert_in.description,
        requested_actions=list(alert_in.requested_actions),
    )
    return await _commit_step(
        session,
        alert,
        Step(alert.id, principal, now, source=source),
        kind="raised",
        change=Change({"dedup_key": alert.dedup_key}, event),
        first=True,
    )


async def _repeat_raise(
    session: AsyncSession,
    alert: Alert,
    alert_in: AlertCreate,
    principal: Principal,
    now: datetime,
    source: str | None,
) -> Alert:
    """The same situation raised again: recorded on the open alert, whose fields stay as they
    are (the raiser changes them with a situation update, under If-Match)."""
    reported = alert_in.model_dump(mode="json", exclude={"dedup_key", "description"})
    change = Change(
        {"text": alert_in.description, "repeated_raise": True, "reported": reported},
        partial(AlertUpdated, update_text=alert_in.description, repeated_raise=True),
    )
    step = Step(alert.id, principal, now, source=source)
    return await _commit_step(session, alert, step, kind="updated", change=change)


async def add_situation_update(
    *,
    session: AsyncSession,
    step: Step,
    update_in: SituationUpdateCreate,
    settings: ConsultationSettings,
) -> Alert:
    """Anyone involved adds text; the raiser and the co-chairs may also change fields."""
    principal = step.principal
    alert = await get_visible_alert(
        session=session, alert_id=step.alert_id, principal=principal, for_update=True
    )
    member = principal.member_id
    involved = is_co_chair(principal) or (
        member is not None
        and (member == alert.raised_by_member or member in alert.affected_members)
    )
    if not involved:
        raise forbidden(
            "Only the raising member, the affected members and the co-chairs post updates."
        )
    changes = update_in.changes()
    if changes and not (is_co_chair(principal) or _is_raiser(alert, principal)):
        raise forbidden("Only the raising member and the co-chairs change an alert's fields.")
    if changes or step.if_match is not None:
        check_version(alert.version, step.if_match)
    if AlertStatus(alert.status) in CLOSED_STATUSES:
        raise cannot_become("updated", alert.status, "Reopen it first.")
    if "affected_members" in changes:
        await _warn_of_unknown_members(session, changes["affected_members"])
    diffs: dict[str, Any] = {}
    for field, new in changes.items():
        old = getattr(alert, field)
        if old != new:
            diffs[field] = {"from": old, "to": new}
            setattr(alert, field, new)
    if "affected_members" in diffs:
        await session.exec(
            delete(AlertAffectedMember).where(col(AlertAffectedMember.alert_id) == alert.id)
        )
        for affected in alert.affected_members:
            session.add(AlertAffectedMember(alert_id=alert.id, member_id=affected))
    if "severity" in diffs and AlertStatus(alert.status) in UNACKNOWLEDGED_STATUSES:
        await _replan_for_new_severity(session, alert, settings=settings, now=step.now)
    change = Change(
        {"text": update_in.text, "changes": diffs},
        partial(AlertUpdated, update_text=update_in.text, changed_fields=list(diffs)),
    )
    return await _commit_step(session, alert, step, kind="updated", change=change)


# --- the lifecycle ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Transition:
    """A lifecycle step: its timeline kind, the statuses it leaves, and who may take it."""

    kind: str
    #: Past participle for the answers: "An alert that is raised cannot be <done>."
    done: str
    allowed: frozenset[AlertStatus]
    #: The raising member may take it as well as the co-chairs.
    raiser_too: bool = False
    #: Pending escalation timers are cancelled in the same transaction.
    stops_escalation: bool = False


_ACKNOWLEDGED_AND_OPEN = frozenset(
    {
        AlertStatus.acknowledged,
        AlertStatus.consultation_convened,
        AlertStatus.outreach_under_way,
    }
)
ACKNOWLEDGE = Transition(
    "acknowledged", "acknowledged", UNACKNOWLEDGED_STATUSES, stops_escalation=True
)
ESCALATE = Transition("escalated", "escalated", OPEN_STATUSES)
CONVENE = Transition("consultation_convened", "convened", _ACKNOWLEDGED_AND_OPEN)
LOG_OUTREACH = Transition(
    "outreach_logged",
    "given outreach",
    frozenset({AlertStatus.consultation_convened, AlertStatus.outreach_under_way}),
)
RESOLVE = Transition("resolved", "resolved", _ACKNOWLEDGED_AND_OPEN, stops_escalation=True)
WITHDRAW = Transition(
    "withdrawn", "withdrawn", OPEN_STATUSES, raiser_too=True, stops_escalation=True
)
REOPEN = Transition("reopened", "reopened", CLOSED_STATUSES, raiser_too=True)


async def _take_step(
    session: AsyncSession,
    step: Step,
    transition: Transition,
    apply: Callable[[Alert], Awaitable[Change]],
) -> Alert:
    """One lifecycle step, one transaction: load and lock the alert, then check in order:
    visible (404), allowed (403), fresh (412), legal from its current status (409); apply the
    step, and record it (timeline, event, audit) as it commits."""
    principal = step.principal
    alert = await get_visible_alert(
        session=session, alert_id=step.alert_id, principal=principal, for_update=True
    )
    if not (is_co_chair(principal) or (transition.raiser_too and _is_raiser(alert, principal))):
        who = "the raising member or a co-chair" if transition.raiser_too else "a co-chair"
        raise forbidden(f"Only {who} can mark an alert {transition.done}.")
    if step.if_match is not None:
        check_version(alert.version, step.if_match)
    if AlertStatus(alert.status) not in transition.allowed:
        raise cannot_become(transition.done, alert.status)
    if transition.stops_escalation:
        await _cancel_pending_timers(session, alert.id, step.now)
    change = await apply(alert)
    return await _commit_step(session, alert, step, kind=transition.kind, change=change)


async def acknowledge_alert(*, session: AsyncSession, step: Step, via_link: bool = False) -> Alert:
    async def apply(alert: Alert) -> Change:
        alert.status = AlertStatus.acknowledged.value
        alert.acknowledged_at = step.now
        alert.acknowledged_by = actor_of(step.principal).model_dump(mode="json")
        return Change({"via_link": via_link}, partial(AlertAcknowledged, via_link=via_link))

    return await _take_step(session, step, ACKNOWLEDGE, apply)


def _escalate(alert: Alert, *, reason: str, notify: bool, **details: Any) -> Change:
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


async def escalate_alert(
    *, session: AsyncSession, step: Step, escalation_in: EscalationCreate
) -> Alert:
    """A co-chair escalates by hand, at any open status."""

    async def apply(alert: Alert) -> Change:
        notify = escalation_in.notify_senior_officials
        return _escalate(alert, reason="manual", notify=notify, note=escalation_in.reason)

    return await _take_step(session, step, ESCALATE, apply)


async def convene_consultation(
    *, session: AsyncSession, step: Step, consultation_in: ConsultationCreate
) -> Alert:
    async def apply(alert: Alert) -> Change:
        alert.status = AlertStatus.consultation_convened.value
        alert.convened_at = alert.convened_at or step.now
        event = partial(
            AlertConsultationConvened,
            convened_for=consultation_in.convened_for,
            participants=list(consultation_in.participants),
            agenda=consultation_in.agenda,
        )
        return Change(consultation_in.model_dump(mode="json"), event)

    return await _take_step(session, step, CONVENE, apply)


async def log_outreach(*, session: AsyncSession, step: Step, outreach_in: OutreachCreate) -> Alert:
    """Good Offices outreach follows a consultation: who reached whom, with what outcome."""

    async def apply(alert: Alert) -> Change:
        alert.status = AlertStatus.outreach_under_way.value
        event = partial(
            AlertOutreachLogged,
            reached_by=outreach_in.reached_by,
            reached=outreach_in.reached,
            outcome=outreach_in.outcome,
        )
        return Change(outreach_in.model_dump(mode="json"), event)

    return await _take_step(session, step, LOG_OUTREACH, apply)


def _close(alert: Alert, status: AlertStatus, now: datetime) -> None:
    alert.status_before_close = alert.status
    alert.status = status.value
    alert.closed_at = now
    alert.open_dedup_key = None


async def resolve_alert(
    *, session: AsyncSession, step: Step, resolution_in: ResolutionCreate
) -> Alert:
    summary = resolution_in.summary

    async def apply(alert: Alert) -> Change:
        _close(alert, AlertStatus.resolved, step.now)
        alert.resolved_at = step.now
        alert.resolution_summary = summary
        return Change({"summary": summary}, partial(AlertResolved, summary=summary))

    return await _take_step(session, step, RESOLVE, apply)


async def withdraw_alert(*, session: AsyncSession, step: Step, reason_in: ReasonCreate) -> Alert:
    reason = reason_in.reason

    async def apply(alert: Alert) -> Change:
        _close(alert, AlertStatus.withdrawn, step.now)
        alert.withdrawal_reason = reason
        return Change({"reason": reason}, partial(AlertWithdrawn, reason=reason))

    return await _take_step(session, step, WITHDRAW, apply)


def reopen_deadline(alert: Alert, settings: ConsultationSettings) -> datetime | None:
    if alert.closed_at is None:
        return None
    return as_utc(alert.closed_at) + timedelta(hours=settings.reopen_window_hours)


async def reopen_alert(
    *,
    session: AsyncSession,
    step: Step,
    reason_in: ReasonCreate,
    settings: ConsultationSettings,
) -> Alert:
    """Back to the status it was closed from, within the reopen period."""

    async def apply(alert: Alert) -> Change:
        deadline = reopen_deadline(alert, settings)
        if deadline is None or step.now > deadline:
            raise cannot_become(
                "reopened",
                alert.status,
                f"The reopen period of {settings.reopen_window_hours:g} hours is over; "
                "raise a new alert instead.",
            )
        clash = await _open_alert_for(session, alert.raised_by_member, alert.dedup_key)
        if clash is not None:
            raise conflict(
                f"Alert {clash.id} is open with the same dedup key; update that one instead.",
                slug="dedup-key-open",
            )
        target = AlertStatus(alert.status_before_close or AlertStatus.raised)
        alert.status = target.value
        alert.status_before_close = None
        alert.closed_at = None
        alert.resolved_at = None
        alert.resolution_summary = None
        alert.withdrawal_reason = None
        alert.open_dedup_key = alert.dedup_key
        if target in UNACKNOWLEDGED_STATUSES:
            alert.escalation_plan += 1
            alert.escalation_anchor_at = step.now
            _plan_escalations(session, alert, settings=settings, now=step.now)
        return Change(
            {"reason": reason_in.reason, "status": target.value},
            partial(AlertReopened, reason=reason_in.reason),
        )

    try:
        return await _take_step(session, step, REOPEN, apply)
    except IntegrityError:
        await session.rollback()
        raise conflict(
            "Another alert was opened with the same dedup key meanwhile.", slug="dedup-key-open"
        ) from None


# --- one-click acknowledge links ----------------------------------------------------------------


def verify_ack_link(
    *, settings: ConsultationSettings, token: str, alert_id: str, now: datetime
) -> LinkClaims:
    """Signature, purpose, expiry and the alert it was minted for; single use is checked apart."""
    try:
        claims = verify_link_token(
            settings.link_signing_secret, token, purpose=ACKNOWLEDGE_LINK_PURPOSE, now=now
        )
    except ExpiredLinkToken:
        raise ProblemError(
            410,
            "Link expired",
            "This acknowledge link has expired. Acknowledge the alert from the platform.",
            slug="link-expired",
        ) from None
    except InvalidLinkToken:
        raise _invalid_link() from None
    if claims.subject != alert_id:
        raise _invalid_link()
    return claims


def _invalid_link() -> ProblemError:
    return ProblemError(
        403, "Invalid link", "This acknowledge link is not valid.", slug="link-invalid"
    )


def link_already_used() -> ProblemError:
    return ProblemError(
        409, "Link already used", "This acknowledge link has already been used.", slug="link-used"
    )


async def link_was_used(*, session: AsyncSession, claims: LinkClaims) -> bool:
    return await session.get(UsedLinkToken, claims.token_id) is not None


async def link_principal(
    *, session: AsyncSession, settings: ConsultationSettings, recipient: str
) -> Principal:
    """The co-chair a link was minted for, by member id or focal point email.

    The signature vouches for the recipient; the directory, once it names co-chairs,
    must agree that the recipient is one of them.
    """
    members = list((await session.exec(select(DirectoryMember))).all())
    wanted = recipient.casefold()
    for member in members:
        if member.member_id == recipient:
            if member.is_co_chair and member.active:
                return _acting_for(recipient, member.member_id, member.name, None)
            raise forbidden("The link's recipient is not a co-chair.")
        for focal_point in member.focal_points:
            if str(focal_point.get("email", "")).casefold() != wanted:
                continue
            if member.is_co_chair and member.active and focal_point.get("active", True):
                name = str(focal_point.get("name") or member.name)
                return _acting_for(recipient, member.member_id, name, recipient)
            raise forbidden("The link's recipient is not a co-chair focal point.")
    directory_names_co_chairs = any(m.is_co_chair for m in members)
    if directory_names_co_chairs:
        raise forbidden("The link's recipient is not a co-chair.")
    member_id = recipient if recipient in settings.co_chair_members else None
    email = recipient if "@" in recipient else None
    return _acting_for(recipient, member_id, None, email)


def _acting_for(
    recipient: str, member_id: str | None, name: str | None, email: str | None
) -> Principal:
    return Principal(
        subject=f"link:{recipient}",
        member_id=member_id,
        roles=frozenset({Role.co_chair}),
        name=name,
        email=email,
    )


async def acknowledge_by_link(
    *,
    session: AsyncSession,
    alert_id: str,
    token: str,
    settings: ConsultationSettings,
    now: datetime,
    source: str | None = None,
) -> Alert:
    """Acknowledge on behalf of the co-chair the link was minted for; the token is spent in the
    same transaction, so a reused link never acknowledges twice."""
    claims = verify_ack_link(settings=settings, token=token, alert_id=alert_id, now=now)
    if await link_was_used(session=session, claims=claims):
        raise link_already_used()
    principal = await link_principal(session=session, settings=settings, recipient=claims.recipient)
    session.add(
        UsedLinkToken(
            token_id=claims.token_id,
            purpose=claims.purpose,
            subject=claims.subject,
            recipient=claims.recipient,
            used_at=now,
        )
    )
    try:
        return await acknowledge_alert(
            session=session, step=Step(alert_id, principal, now, source=source), via_link=True
        )
    except IntegrityError:
        await session.rollback()
        raise link_already_used() from None


async def inspect_ack_link(
    *,
    session: AsyncSession,
    alert_id: str,
    token: str,
    settings: ConsultationSettings,
    now: datetime,
) -> Alert:
    """Everything the link's POST would check, without acknowledging: for the GET page."""
    claims = verify_ack_link(settings=settings, token=token, alert_id=alert_id, now=now)
    if await link_was_used(session=session, claims=claims):
        raise link_already_used()
    await link_principal(session=session, settings=settings, recipient=claims.recipient)
    alert = await session.get(Alert, alert_id)
    if alert is None:
        raise not_visible(alert_id)
    return alert


async def cap_context(
    *, session: AsyncSession, alert: Alert, settings: ConsultationSettings, web: str | None
) -> CapContext:
    addresses: list[str] = []
    if alert.sensitivity != Sensitivity.public:
        addresses = await cap_addresses(session=session, alert=alert, settings=settings)
    name = await member_name(session=session, member_id=alert.raised_by_member)
    return CapContext(
        sender=settings.cap_sender,
        status=settings.cap_status,
        addresses=addresses,
        sender_name=name or alert.raised_by_member,
        web=web,
    )
