"""Reading alerts as the caller may: one, a page, a timeline, the public feed, CAP context."""

from __future__ import annotations

from bali_common.events.alerts import AlertStatus, Sensitivity, Severity, SituationType
from bali_common.http.pagination import PageRequest, keyset_page
from bali_common.visibility import AlertViewer
from pydantic import BaseModel
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_consultation import directory
from bali_consultation.alerts import access
from bali_consultation.alerts.cap import CapContext
from bali_consultation.alerts.models import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    Alert,
    AlertTimelineEntry,
)
from bali_consultation.settings import ConsultationSettings


async def get_visible_alert(
    *, session: AsyncSession, alert_id: str, viewer: AlertViewer, for_update: bool = False
) -> Alert:
    alert = await session.get(Alert, alert_id, with_for_update=for_update or None)
    if alert is None or not access.can_see(alert, viewer):
        raise access.not_visible(alert_id)
    return alert


async def get_public_or_visible_alert(
    *, session: AsyncSession, alert_id: str, viewer: AlertViewer | None
) -> Alert:
    """For documents public alerts publish without login (CAP): restricted ones need a caller."""
    alert = await session.get(Alert, alert_id)
    if alert is None:
        raise access.not_visible(alert_id)
    if alert.sensitivity == Sensitivity.public:
        return alert
    if viewer is None or not access.can_see(alert, viewer):
        raise access.not_visible(alert_id)
    return alert


async def find_alert(*, session: AsyncSession, alert_id: str) -> Alert | None:
    """Any alert, visible or not: for callers authorised otherwise (a verified link)."""
    return await session.get(Alert, alert_id)


async def open_alert_for(*, session: AsyncSession, member_id: str, dedup_key: str) -> Alert | None:
    """The raising member's open alert of one situation, locked."""
    found = await session.exec(
        select(Alert)
        .where(Alert.raised_by_member == member_id, Alert.open_dedup_key == dedup_key)
        .with_for_update()
    )
    return found.first()


class AlertFilters(BaseModel):
    status: AlertStatus | None = None
    open: bool | None = None
    severity: Severity | None = None
    situation_type: SituationType | None = None
    sensitivity: Sensitivity | None = None
    raised_by_member: str | None = None
    affected_member: str | None = None


async def list_alerts(
    *, session: AsyncSession, viewer: AlertViewer, filters: AlertFilters, page: PageRequest
) -> tuple[list[Alert], str | None]:
    """Alerts the caller may see, newest first, one page at a time."""
    query = select(Alert).where(access.visible_alerts(viewer))
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
        query = query.where(col(Alert.id).in_(access.affecting(filters.affected_member)))
    listed = await keyset_page(
        session,
        query,
        page=page,
        order_by=[col(Alert.raised_at), col(Alert.id)],
        descending=True,
    )
    return listed.rows, listed.next_cursor


async def list_timeline(
    *, session: AsyncSession, alert_id: str, viewer: AlertViewer, page: PageRequest
) -> tuple[list[AlertTimelineEntry], str | None]:
    await get_visible_alert(session=session, alert_id=alert_id, viewer=viewer)
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


async def _cap_addresses(
    *, session: AsyncSession, alert: Alert, settings: ConsultationSettings
) -> list[str]:
    """Who a restricted alert's CAP document is for: co-chairs, raising and affected members."""
    co_chairs = await directory.co_chair_ids(session=session, settings=settings)
    return sorted({*co_chairs, alert.raised_by_member, *alert.affected_members})


async def cap_context(
    *, session: AsyncSession, alert: Alert, settings: ConsultationSettings, web: str | None
) -> CapContext:
    addresses: list[str] = []
    if alert.sensitivity != Sensitivity.public:
        addresses = await _cap_addresses(session=session, alert=alert, settings=settings)
    name = await directory.name_of(session=session, member_id=alert.raised_by_member)
    return CapContext(
        sender=settings.cap_sender,
        status=settings.cap_status,
        addresses=addresses,
        sender_name=name or alert.raised_by_member,
        web=web,
    )
