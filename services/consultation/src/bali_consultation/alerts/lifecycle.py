"""The alert lifecycle: which step is legal from which status, who may take it, and each step."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from bali_common.db import as_utc
from bali_common.events.alerts import (
    AlertAcknowledged,
    AlertConsultationConvened,
    AlertOutreachLogged,
    AlertReopened,
    AlertResolved,
    AlertStatus,
    AlertWithdrawn,
)
from bali_common.http.concurrency import check_version
from bali_common.problems import ProblemError, conflict, forbidden, illegal_transition
from bali_common.visibility import AlertViewer
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_consultation.alerts import access, escalation, queries, steps
from bali_consultation.alerts.models import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    UNACKNOWLEDGED_STATUSES,
    Alert,
)
from bali_consultation.alerts.schemas import (
    ConsultationCreate,
    EscalationCreate,
    OutreachCreate,
    ReasonCreate,
    ResolutionCreate,
)
from bali_consultation.alerts.steps import Change, Step
from bali_consultation.settings import ConsultationSettings


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


def not_allowed(*, done: str, status: str, hint: str = "") -> ProblemError:
    """409 for a step the alert's current status does not allow."""
    return illegal_transition(
        f"An alert that is {status} cannot be {done}.{' ' + hint if hint else ''}"
    )


async def _take(
    *,
    session: AsyncSession,
    step: Step,
    viewer: AlertViewer,
    transition: Transition,
    apply: Callable[[Alert], Awaitable[Change]],
) -> Alert:
    """One lifecycle step, one transaction: load and lock the alert, then check in order:
    visible (404), allowed (403), fresh (412), legal from its current status (409); apply the
    step, and record it (timeline, event, audit) as it commits.

    `viewer` is the step's principal as the visibility rule sees it: only an acting co-chair
    (or, where the transition allows, the raising member) takes a step; administrators see
    every alert but act for no co-chair."""
    alert = await queries.get_visible_alert(
        session=session, alert_id=step.alert_id, viewer=viewer, for_update=True
    )
    if not (
        viewer.is_co_chair or (transition.raiser_too and access.is_raiser(alert, step.principal))
    ):
        who = "the raising member or a co-chair" if transition.raiser_too else "a co-chair"
        raise forbidden(f"Only {who} can mark an alert {transition.done}.")
    if step.if_match is not None:
        check_version(alert.version, step.if_match)
    if AlertStatus(alert.status) not in transition.allowed:
        raise not_allowed(done=transition.done, status=alert.status)
    if transition.stops_escalation:
        await escalation.cancel_pending(session=session, alert_id=alert.id, now=step.now)
    change = await apply(alert)
    return await steps.commit(
        session=session, alert=alert, step=step, kind=transition.kind, change=change
    )


async def acknowledge(
    *, session: AsyncSession, step: Step, viewer: AlertViewer, via_link: bool = False
) -> Alert:
    async def apply(alert: Alert) -> Change:
        alert.status = AlertStatus.acknowledged.value
        alert.acknowledged_at = step.now
        alert.acknowledged_by = steps.actor_of(step.principal).model_dump(mode="json")
        return Change({"via_link": via_link}, partial(AlertAcknowledged, via_link=via_link))

    return await _take(
        session=session, step=step, viewer=viewer, transition=ACKNOWLEDGE, apply=apply
    )


async def escalate(
    *, session: AsyncSession, step: Step, viewer: AlertViewer, escalation_in: EscalationCreate
) -> Alert:
    """A co-chair escalates by hand, at any open status."""

    async def apply(alert: Alert) -> Change:
        notify = escalation_in.notify_senior_officials
        return escalation.raise_level(
            alert=alert, reason="manual", notify=notify, note=escalation_in.reason
        )

    return await _take(session=session, step=step, viewer=viewer, transition=ESCALATE, apply=apply)


async def convene(
    *,
    session: AsyncSession,
    step: Step,
    viewer: AlertViewer,
    consultation_in: ConsultationCreate,
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

    return await _take(session=session, step=step, viewer=viewer, transition=CONVENE, apply=apply)


async def log_outreach(
    *, session: AsyncSession, step: Step, viewer: AlertViewer, outreach_in: OutreachCreate
) -> Alert:
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

    return await _take(
        session=session, step=step, viewer=viewer, transition=LOG_OUTREACH, apply=apply
    )


def _close(alert: Alert, status: AlertStatus, now: datetime) -> None:
    alert.status_before_close = alert.status
    alert.status = status.value
    alert.closed_at = now
    alert.open_dedup_key = None


async def resolve(
    *, session: AsyncSession, step: Step, viewer: AlertViewer, resolution_in: ResolutionCreate
) -> Alert:
    summary = resolution_in.summary

    async def apply(alert: Alert) -> Change:
        _close(alert, AlertStatus.resolved, step.now)
        alert.resolved_at = step.now
        alert.resolution_summary = summary
        return Change({"summary": summary}, partial(AlertResolved, summary=summary))

    return await _take(session=session, step=step, viewer=viewer, transition=RESOLVE, apply=apply)


async def withdraw(
    *, session: AsyncSession, step: Step, viewer: AlertViewer, reason_in: ReasonCreate
) -> Alert:
    reason = reason_in.reason

    async def apply(alert: Alert) -> Change:
        _close(alert, AlertStatus.withdrawn, step.now)
        alert.withdrawal_reason = reason
        return Change({"reason": reason}, partial(AlertWithdrawn, reason=reason))

    return await _take(session=session, step=step, viewer=viewer, transition=WITHDRAW, apply=apply)


def reopen_deadline(*, alert: Alert, settings: ConsultationSettings) -> datetime | None:
    """Until when a closed alert may be reopened; None while it is open."""
    if alert.closed_at is None:
        return None
    return as_utc(alert.closed_at) + timedelta(hours=settings.reopen_window_hours)


async def reopen(
    *,
    session: AsyncSession,
    step: Step,
    viewer: AlertViewer,
    reason_in: ReasonCreate,
    settings: ConsultationSettings,
) -> Alert:
    """Back to the status it was closed from, within the reopen period."""

    async def apply(alert: Alert) -> Change:
        deadline = reopen_deadline(alert=alert, settings=settings)
        if deadline is None or step.now > deadline:
            raise not_allowed(
                done="reopened",
                status=alert.status,
                hint=f"The reopen period of {settings.reopen_window_hours:g} hours is over; "
                "raise a new alert instead.",
            )
        clash = await queries.open_alert_for(
            session=session, member_id=alert.raised_by_member, dedup_key=alert.dedup_key
        )
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
            session.add_all(escalation.plan(alert=alert, settings=settings, now=step.now))
        return Change(
            {"reason": reason_in.reason, "status": target.value},
            partial(AlertReopened, reason=reason_in.reason),
        )

    try:
        return await _take(
            session=session, step=step, viewer=viewer, transition=REOPEN, apply=apply
        )
    except IntegrityError:
        await session.rollback()
        raise conflict(
            "Another alert was opened with the same dedup key meanwhile.", slug="dedup-key-open"
        ) from None
