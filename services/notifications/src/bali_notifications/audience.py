"""Which alerts a reader may see here: the common rule, with this directory's co-chairs."""

from __future__ import annotations

import logging
from typing import Any

from bali_common.auth import Principal
from bali_common.db import SessionFactory, transaction
from bali_common.events.alerts import AlertSummary
from bali_common.visibility import AlertViewer, alert_viewer, where_visible
from sqlalchemy import ColumnElement, or_, true
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_notifications import directory
from bali_notifications.deliveries.models import SourceEvent
from bali_notifications.planning import AlertAffectedMember, AlertState, keep_affected

log = logging.getLogger(__name__)


async def viewer_of(*, session: AsyncSession, principal: Principal) -> AlertViewer:
    """The caller as the visibility rule sees them, with the co-chairs the directory lists."""
    return alert_viewer(principal, co_chair_members=await directory.co_chair_ids(session=session))


def readable(alert_id: Any, viewer: AlertViewer) -> ColumnElement[bool]:
    """The condition on a row about `alert_id` (an inbox item, a delivery) that the viewer
    may see it: a row about no alert always, one about an alert as the rule says, by the
    alert's audience as its latest state holds it."""
    if viewer.sees_everything:
        return true()
    visible = where_visible(
        viewer,
        sensitivity=col(AlertState.sensitivity),
        names_member=lambda member_id: or_(
            col(AlertState.raised_by_member) == member_id,
            col(AlertState.alert_id).in_(
                select(AlertAffectedMember.alert_id).where(
                    AlertAffectedMember.member_id == member_id
                )
            ),
        ),
    )
    return or_(alert_id.is_(None), alert_id.in_(select(AlertState.alert_id).where(visible)))


async def backfill(sessions: SessionFactory, *, batch: int = 200) -> int:
    """Give alert states kept before the rule their audience, from the event each one keeps.

    Until then such an alert counts as restricted and naming no member: only those who see
    every alert (acting co-chairs, administrators) read what was stored about it.
    """
    filled = 0
    while True:
        async with transaction(sessions) as session:
            states = list(
                (
                    await session.exec(
                        select(AlertState)
                        .where(col(AlertState.sensitivity).is_(None))
                        .limit(batch)
                        .with_for_update(skip_locked=True)
                    )
                ).all()
            )
            for state in states:
                source = await session.get(SourceEvent, state.event_id)
                if source is None or "alert" not in source.data:
                    log.warning("alert %s: no event to take its audience from", state.alert_id)
                    state.sensitivity = "restricted"
                    state.raised_by_member = ""
                else:
                    alert = AlertSummary.model_validate(source.data["alert"])
                    state.sensitivity = alert.sensitivity.value
                    state.raised_by_member = alert.raised_by_member
                    state.affected_members = list(alert.affected_members)
                await keep_affected(session, state.alert_id, state.affected_members)
                session.add(state)
        filled += len(states)
        if len(states) < batch:
            if filled:
                log.info("visibility: filled in the audience of %d alerts", filled)
            return filled
