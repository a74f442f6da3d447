"""Who may see an alert and who may act on it: the common visibility rule, with this directory."""

from __future__ import annotations

from typing import Any

from bali_common.auth import Principal
from bali_common.events.alerts import Sensitivity
from bali_common.problems import ProblemError, not_found
from bali_common.visibility import AlertAudience, AlertViewer, alert_viewer, where_visible
from sqlalchemy import ColumnElement, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_consultation import directory
from bali_consultation.alerts.models import Alert, AlertAffectedMember
from bali_consultation.settings import ConsultationSettings


async def viewer_of(
    *, session: AsyncSession, principal: Principal, settings: ConsultationSettings
) -> AlertViewer:
    """The caller as the rule sees them, with the co-chairs this service's directory names."""
    co_chairs = await directory.co_chair_ids(session=session, settings=settings)
    return alert_viewer(principal, co_chair_members=co_chairs)


def audience_of(alert: Alert) -> AlertAudience:
    return AlertAudience(
        sensitivity=Sensitivity(alert.sensitivity),
        raised_by_member=alert.raised_by_member,
        affected_members=frozenset(alert.affected_members),
    )


def can_see(alert: Alert, viewer: AlertViewer) -> bool:
    return viewer.may_see(audience_of(alert))


def visible_alerts(viewer: AlertViewer) -> ColumnElement[bool]:
    """`can_see` as the condition of a query on alerts."""
    return where_visible(viewer, sensitivity=col(Alert.sensitivity), names_member=_names)


def _names(member_id: str) -> ColumnElement[bool]:
    return or_(col(Alert.raised_by_member) == member_id, col(Alert.id).in_(affecting(member_id)))


def affecting(member_id: str) -> Any:
    """The ids of the alerts that affect the member."""
    return select(AlertAffectedMember.alert_id).where(AlertAffectedMember.member_id == member_id)


def is_raiser(alert: Alert, principal: Principal) -> bool:
    return principal.member_id is not None and principal.member_id == alert.raised_by_member


def posts_updates(alert: Alert, viewer: AlertViewer) -> bool:
    """The co-chairs, the raising member and the affected members."""
    return viewer.is_co_chair or viewer.names_me(audience_of(alert))


def not_visible(alert_id: str) -> ProblemError:
    """The same answer whether the alert does not exist or is hidden from the caller."""
    return not_found(f"No alert {alert_id} is visible to you.")
