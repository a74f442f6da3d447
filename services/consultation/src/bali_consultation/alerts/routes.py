"""HTTP API of the alerts: raising and reading them (steps are in step_routes.py)."""

from __future__ import annotations

from typing import Annotated

from bali_common.events.alerts import AlertStatus, Sensitivity, Severity, SituationType
from bali_common.http.concurrency import etag_of, set_etag
from bali_common.http.idempotency import IdempotentWriteDep, WriteOutcome
from bali_common.http.pagination import Page, PageRequestDep
from bali_common.problems import problem_responses
from fastapi import APIRouter, Path, Query, Request, Response
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_consultation.alerts import lifecycle, queries, raising
from bali_consultation.alerts.cap import ATOM_MEDIA_TYPE, CAP_MEDIA_TYPE, atom_feed, cap_document
from bali_consultation.alerts.models import Alert
from bali_consultation.alerts.schemas import (
    AlertCreate,
    AlertPublic,
    TimelineEntryPublic,
    to_public,
    to_timeline_public,
)
from bali_consultation.deps import (
    PUBLIC_FEED,
    PUBLIC_OR_VISIBLE,
    ClientSource,
    Now,
    OptionalViewer,
    Raiser,
    SessionDep,
    SettingsDep,
    Viewer,
)
from bali_consultation.settings import ConsultationSettings

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])

AlertId = Annotated[str, Path(max_length=64, description="Alert id (UUID)")]
LinkToken = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=4096,
        description="Signed one-click acknowledge token from the notification email",
    ),
]


def present(alert: Alert, settings: ConsultationSettings) -> AlertPublic:
    return to_public(alert, reopen_until=lifecycle.reopen_deadline(alert=alert, settings=settings))


def _base_url(request: Request, settings: ConsultationSettings) -> str:
    return (settings.public_base_url or str(request.base_url)).rstrip("/")


def etag_headers(alert: Alert) -> dict[str, str]:
    return {"ETag": etag_of(alert.version)}


@router.post(
    "",
    summary="Raise an alert (or add to the open one with the same dedup key)",
    description="Any member may raise. Raising again with the same dedup key while your alert "
    "is open adds an update to it and answers 200 with that alert instead of 201.",
    response_model=AlertPublic,
    status_code=201,
    responses={
        **problem_responses(401, 403, 409, 422),
        200: {"model": AlertPublic, "description": "Added to the open alert"},
    },
)
async def raise_alert(
    alert_in: AlertCreate,
    principal: Raiser,
    write: IdempotentWriteDep,
    settings: SettingsDep,
    now: Now,
    source: ClientSource,
) -> Response:
    async def operation(session: AsyncSession) -> WriteOutcome:
        outcome = await raising.raise_alert(
            session=session,
            alert_in=alert_in,
            principal=principal,
            settings=settings,
            now=now,
            source=source,
        )
        return WriteOutcome.versioned(
            present(outcome.alert, settings),
            version=outcome.alert.version,
            status=201 if outcome.created else 200,
            location=f"/v1/alerts/{outcome.alert.id}",
        )

    return await write.run(principal=principal, request_body=alert_in, operation=operation)


@router.get(
    "",
    summary="List the alerts you may see, newest first",
    response_model=Page[AlertPublic],
    responses=problem_responses(401, 422),
)
async def list_alerts(
    viewer: Viewer,
    session: SessionDep,
    settings: SettingsDep,
    page: PageRequestDep,
    status: AlertStatus | None = None,
    open: Annotated[bool | None, Query(description="Only open (true) or closed (false)")] = None,
    severity: Severity | None = None,
    situation_type: SituationType | None = None,
    sensitivity: Sensitivity | None = None,
    raised_by_member: Annotated[str | None, Query(max_length=50)] = None,
    affected_member: Annotated[str | None, Query(max_length=50)] = None,
) -> Page[AlertPublic]:
    filters = queries.AlertFilters(
        status=status,
        open=open,
        severity=severity,
        situation_type=situation_type,
        sensitivity=sensitivity,
        raised_by_member=raised_by_member,
        affected_member=affected_member,
    )
    rows, cursor = await queries.list_alerts(
        session=session, viewer=viewer, filters=filters, page=page
    )
    return Page[AlertPublic](items=[present(a, settings) for a in rows], next_cursor=cursor)


@router.get(
    "/feed.atom",
    summary="Atom feed of public alerts (no login)",
    description="Public alerts only, most recently changed first; each entry links to its "
    "CAP 1.2 document.",
    response_class=Response,
    responses={200: {"content": {ATOM_MEDIA_TYPE: {}}, "description": "Atom 1.0 feed"}},
    dependencies=[PUBLIC_FEED],
)
async def public_feed(
    request: Request, session: SessionDep, settings: SettingsDep, now: Now
) -> Response:
    alerts = await queries.public_feed_alerts(session=session, limit=settings.feed_max_entries)
    base = _base_url(request, settings)
    document = atom_feed(alerts, base_url=base, feed_url=f"{base}/v1/alerts/feed.atom", now=now)
    return Response(document, media_type=ATOM_MEDIA_TYPE)


@router.get(
    "/{alert_id}",
    summary="One alert, with its response times",
    response_model=AlertPublic,
    responses=problem_responses(401, 404),
)
async def get_alert(
    alert_id: AlertId,
    viewer: Viewer,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
) -> AlertPublic:
    alert = await queries.get_visible_alert(session=session, alert_id=alert_id, viewer=viewer)
    set_etag(response, alert.version)
    return present(alert, settings)


@router.get(
    "/{alert_id}/timeline",
    summary="Every step of the alert: who did what, when",
    response_model=Page[TimelineEntryPublic],
    responses=problem_responses(401, 404, 422),
)
async def get_timeline(
    alert_id: AlertId, viewer: Viewer, session: SessionDep, page: PageRequestDep
) -> Page[TimelineEntryPublic]:
    rows, cursor = await queries.list_timeline(
        session=session, alert_id=alert_id, viewer=viewer, page=page
    )
    return Page[TimelineEntryPublic](
        items=[to_timeline_public(r) for r in rows], next_cursor=cursor
    )


@router.get(
    "/{alert_id}/cap.xml",
    summary="The alert as an OASIS CAP 1.2 document",
    description="Public alerts need no login (the Atom feed links here); restricted alerts "
    "answer only to the co-chairs, the raising member and the affected members, as a CAP "
    "message of scope Private addressed to them.",
    response_class=Response,
    responses={
        **problem_responses(401, 404),
        200: {"content": {CAP_MEDIA_TYPE: {}}, "description": "CAP 1.2 alert"},
    },
    dependencies=[PUBLIC_OR_VISIBLE],
)
async def get_cap(
    alert_id: AlertId,
    request: Request,
    viewer: OptionalViewer,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    alert = await queries.get_public_or_visible_alert(
        session=session, alert_id=alert_id, viewer=viewer
    )
    web = f"{_base_url(request, settings)}/v1/alerts/{alert.id}"
    context = await queries.cap_context(session=session, alert=alert, settings=settings, web=web)
    headers = etag_headers(alert)
    if alert.sensitivity != Sensitivity.public:
        headers["Cache-Control"] = "private, no-store"
    return Response(cap_document(alert, context), media_type=CAP_MEDIA_TYPE, headers=headers)
