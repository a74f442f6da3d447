"""Raising an alert (or adding to the raiser's open alert of the same situation) and updates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any
from uuid import uuid4

from bali_common.auth import Principal
from bali_common.events.alerts import AlertRaised, AlertStatus, AlertUpdated
from bali_common.http.concurrency import check_version
from bali_common.problems import forbidden
from bali_common.visibility import AlertViewer
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_consultation import directory
from bali_consultation.alerts import access, escalation, lifecycle, queries, steps
from bali_consultation.alerts.models import (
    CLOSED_STATUSES,
    UNACKNOWLEDGED_STATUSES,
    Alert,
    AlertAffectedMember,
)
from bali_consultation.alerts.schemas import AlertCreate, SituationUpdateCreate
from bali_consultation.alerts.steps import Change, Step
from bali_consultation.settings import ConsultationSettings


@dataclass(frozen=True)
class RaiseOutcome:
    alert: Alert
    created: bool = True


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
    await directory.warn_of_unknown(session=session, member_ids=alert_in.affected_members)
    existing = await queries.open_alert_for(
        session=session, member_id=member, dedup_key=alert_in.dedup_key
    )
    if existing is None:
        try:
            return RaiseOutcome(
                await _open_new_alert(session, alert_in, principal, settings, now, source)
            )
        except IntegrityError:
            # A concurrent raise of the same situation won the unique (member, open key).
            await session.rollback()
            existing = await queries.open_alert_for(
                session=session, member_id=member, dedup_key=alert_in.dedup_key
            )
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
    session.add_all(escalation.plan(alert=alert, settings=settings, now=now))
    event = partial(
        AlertRaised,
        description=alert_in.description,
        requested_actions=list(alert_in.requested_actions),
    )
    return await steps.commit(
        session=session,
        alert=alert,
        step=Step(alert.id, principal, now, source=source),
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
    return await steps.commit(
        session=session, alert=alert, step=step, kind="updated", change=change
    )


async def add_situation_update(
    *,
    session: AsyncSession,
    step: Step,
    viewer: AlertViewer,
    update_in: SituationUpdateCreate,
    settings: ConsultationSettings,
) -> Alert:
    """Anyone involved adds text; the raiser and the co-chairs may also change fields."""
    principal = step.principal
    alert = await queries.get_visible_alert(
        session=session, alert_id=step.alert_id, viewer=viewer, for_update=True
    )
    if not access.posts_updates(alert, viewer):
        raise forbidden(
            "Only the raising member, the affected members and the co-chairs post updates."
        )
    changes = update_in.changes()
    if changes and not (viewer.is_co_chair or access.is_raiser(alert, principal)):
        raise forbidden("Only the raising member and the co-chairs change an alert's fields.")
    if changes or step.if_match is not None:
        check_version(alert.version, step.if_match)
    if AlertStatus(alert.status) in CLOSED_STATUSES:
        raise lifecycle.not_allowed(done="updated", status=alert.status, hint="Reopen it first.")
    if "affected_members" in changes:
        await directory.warn_of_unknown(session=session, member_ids=changes["affected_members"])
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
        await escalation.replan(session=session, alert=alert, settings=settings, now=step.now)
    change = Change(
        {"text": update_in.text, "changes": diffs},
        partial(AlertUpdated, update_text=update_in.text, changed_fields=list(diffs)),
    )
    return await steps.commit(
        session=session, alert=alert, step=step, kind="updated", change=change
    )
