"""HTTP API of the alerts: thin adapters that parse, authorise and call the use cases."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Annotated, Protocol

from bali_common.auth import AuthenticationError, Principal
from bali_common.events.alerts import AlertStatus, Sensitivity, Severity, SituationType
from bali_common.http.concurrency import IfMatchHeader, etag_of, set_etag
from bali_common.http.idempotency import IdempotentWrite, IdempotentWriteDep, WriteOutcome
from bali_common.http.pagination import Page, PageRequestDep
from bali_common.problems import ProblemError, problem_responses
from bali_common.visibility import AlertViewer
from fastapi import APIRouter, Body, Depends, Form, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_consultation.alerts import access, lifecycle, links, pages, queries, raising
from bali_consultation.alerts.cap import ATOM_MEDIA_TYPE, CAP_MEDIA_TYPE, atom_feed, cap_document
from bali_consultation.alerts.models import UNACKNOWLEDGED_STATUSES, Alert
from bali_consultation.alerts.schemas import (
    AlertCreate,
    AlertPublic,
    ConsultationCreate,
    EscalationCreate,
    OutreachCreate,
    ReasonCreate,
    ResolutionCreate,
    SituationUpdateCreate,
    TimelineEntryPublic,
    to_public,
    to_timeline_public,
)
from bali_consultation.alerts.steps import Step
from bali_consultation.deps import (
    PUBLIC_FEED,
    PUBLIC_OR_VISIBLE,
    SIGNED_LINK,
    SIGNED_LINK_OR_CO_CHAIR,
    ClientSource,
    CoChair,
    MetricsDep,
    Now,
    OptionalPrincipal,
    OptionalViewer,
    PlatformCaller,
    Raiser,
    SessionDep,
    SettingsDep,
    Viewer,
)
from bali_consultation.metrics import ResponseMetrics
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
#: Withdraw, reopen and escalate may be posted without a body.
_OPTIONAL_BODY = "May be omitted: every field has a default"
OptionalReason = Annotated[ReasonCreate | None, Body(description=_OPTIONAL_BODY)]
OptionalEscalation = Annotated[EscalationCreate | None, Body(description=_OPTIONAL_BODY)]


def present(alert: Alert, settings: ConsultationSettings) -> AlertPublic:
    return to_public(alert, reopen_until=lifecycle.reopen_deadline(alert=alert, settings=settings))


def _base_url(request: Request, settings: ConsultationSettings) -> str:
    return (settings.public_base_url or str(request.base_url)).rstrip("/")


def _etag(alert: Alert) -> dict[str, str]:
    return {"ETag": etag_of(alert.version)}


_STEP_RESPONSES = problem_responses(401, 403, 404, 409, 412, 422)


class StepCall(Protocol):
    """A lifecycle use case with its request body bound: it takes the step and commits."""

    def __call__(
        self, *, session: AsyncSession, step: Step, viewer: AlertViewer
    ) -> Awaitable[Alert]: ...


@dataclass(frozen=True)
class StepRunner:
    """What every lifecycle step route shares: clock, caller's address, If-Match and
    Idempotency-Key, and the answer (the alert with its ETag, replayed for a repeated key)."""

    write: IdempotentWrite
    settings: ConsultationSettings
    metrics: ResponseMetrics
    now: datetime
    source: str | None
    if_match: str | None

    async def run(
        self,
        kind: str,
        alert_id: str,
        principal: Principal,
        body: BaseModel | None,
        call: StepCall,
    ) -> Response:
        """Run the step once per Idempotency-Key; `kind` is its timeline kind, for metrics."""
        step = Step(alert_id, principal, self.now, self.if_match, self.source)

        async def operation(session: AsyncSession) -> WriteOutcome:
            viewer = await access.viewer_of(
                session=session, principal=principal, settings=self.settings
            )
            alert = await call(session=session, step=step, viewer=viewer)
            self.metrics.observe_step(kind, alert)
            return WriteOutcome.versioned(present(alert, self.settings), version=alert.version)

        return await self.write.run(principal=principal, request_body=body, operation=operation)


async def step_runner(
    write: IdempotentWriteDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    now: Now,
    source: ClientSource,
    if_match: IfMatchHeader = None,
) -> StepRunner:
    return StepRunner(write, settings, metrics, now, source, if_match)


Steps = Annotated[StepRunner, Depends(step_runner)]


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
    headers = _etag(alert)
    if alert.sensitivity != Sensitivity.public:
        headers["Cache-Control"] = "private, no-store"
    return Response(cap_document(alert, context), media_type=CAP_MEDIA_TYPE, headers=headers)


@router.post(
    "/{alert_id}/updates",
    summary="Add a situation update (optionally changing the alert's fields)",
    description="The raising member, the affected members and the co-chairs add updates; only "
    "the raising member and the co-chairs change fields, and then If-Match is required.",
    response_model=AlertPublic,
    responses=_STEP_RESPONSES | problem_responses(428),
)
async def add_update(
    alert_id: AlertId,
    update_in: SituationUpdateCreate,
    principal: PlatformCaller,
    steps: Steps,
) -> Response:
    return await steps.run(
        "updated",
        alert_id,
        principal,
        update_in,
        partial(raising.add_situation_update, update_in=update_in, settings=steps.settings),
    )


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "json" in accept and "text/html" not in accept


@router.get(
    "/{alert_id}/acknowledge",
    summary="Confirmation page of a one-click acknowledge link (no login)",
    description="Shows the alert and a button; nothing is acknowledged by this GET, so mail "
    "scanners that follow links cannot acknowledge. Authorised by the signed `token`.",
    response_class=Response,
    responses={
        200: {"content": {"text/html": {}}, "description": "Confirmation page"},
        403: {"content": {"text/html": {}}, "description": "Invalid or tampered link"},
        404: {"content": {"text/html": {}}, "description": "No such alert"},
        409: {"content": {"text/html": {}}, "description": "Link already used"},
        410: {"content": {"text/html": {}}, "description": "Link expired"},
    },
    dependencies=[SIGNED_LINK],
)
async def acknowledge_page(
    alert_id: AlertId,
    session: SessionDep,
    settings: SettingsDep,
    now: Now,
    token: Annotated[
        str,
        Query(min_length=1, max_length=4096, description="Signed acknowledge token"),
    ],
) -> Response:
    try:
        alert = await links.inspect(
            session=session, alert_id=alert_id, token=token, settings=settings, now=now
        )
    except ProblemError as problem:
        return pages.error_page(status=problem.status, title=problem.title, detail=problem.detail)
    if AlertStatus(alert.status) not in UNACKNOWLEDGED_STATUSES:
        return pages.already_acknowledged_page(alert, status=200)
    # Relative, so that it also resolves behind a reverse proxy that adds a path prefix.
    return pages.confirmation_page(alert, token=token, action="acknowledge")


@router.post(
    "/{alert_id}/acknowledge",
    summary="Acknowledge the alert (co-chair token, or a signed one-click link token)",
    description="With a bearer token: co-chairs only. With `token` (form field or query, from "
    "the link's page): acknowledges on behalf of the co-chair the link was minted for; each "
    "link works once and until it expires. Link answers are HTML unless JSON is asked for.",
    response_model=AlertPublic,
    responses=_STEP_RESPONSES
    | problem_responses(410)
    | {
        status: {"content": {"text/html": {"schema": {"type": "string"}}}}
        for status in (200, 403, 404, 409, 410)
    },
    dependencies=[SIGNED_LINK_OR_CO_CHAIR],
)
async def acknowledge(
    alert_id: AlertId,
    principal: OptionalPrincipal,
    steps: Steps,
    token: LinkToken = None,
    form_token: Annotated[str | None, Form(alias="token", max_length=4096)] = None,
) -> Response:
    link_token = form_token or token
    if link_token is not None:
        return await _acknowledge_by_link(alert_id=alert_id, token=link_token, steps=steps)
    if principal is None:
        raise AuthenticationError("Bearer token or acknowledge link token required", missing=True)
    return await steps.run("acknowledged", alert_id, principal, None, lifecycle.acknowledge)


async def _acknowledge_by_link(*, alert_id: str, token: str, steps: StepRunner) -> Response:
    try:
        async with steps.write.sessions() as session:
            alert = await links.acknowledge(
                session=session,
                alert_id=alert_id,
                token=token,
                settings=steps.settings,
                now=steps.now,
                source=steps.source,
            )
    except ProblemError as problem:
        if _wants_json(steps.write.request):
            raise
        if problem.slug == "illegal-transition":
            async with steps.write.sessions() as session:
                current = await queries.find_alert(session=session, alert_id=alert_id)
            if current is not None:
                return pages.already_acknowledged_page(current, status=409)
        return pages.error_page(status=problem.status, title=problem.title, detail=problem.detail)
    steps.metrics.observe_step("acknowledged", alert)
    if _wants_json(steps.write.request):
        body = present(alert, steps.settings).model_dump(mode="json")
        return JSONResponse(body, headers=_etag(alert))
    return pages.acknowledged_page(alert)


@router.post(
    "/{alert_id}/escalate",
    summary="Escalate by hand (co-chairs)",
    response_model=AlertPublic,
    responses=_STEP_RESPONSES,
)
async def escalate(
    alert_id: AlertId,
    principal: CoChair,
    steps: Steps,
    escalation_in: OptionalEscalation = None,
) -> Response:
    escalation = escalation_in or EscalationCreate()
    return await steps.run(
        "escalated",
        alert_id,
        principal,
        escalation,
        partial(lifecycle.escalate, escalation_in=escalation),
    )


@router.post(
    "/{alert_id}/consultations",
    summary="Convene a consultation on an acknowledged alert (co-chairs)",
    response_model=AlertPublic,
    responses=_STEP_RESPONSES,
)
async def convene(
    alert_id: AlertId, consultation_in: ConsultationCreate, principal: CoChair, steps: Steps
) -> Response:
    return await steps.run(
        "consultation_convened",
        alert_id,
        principal,
        consultation_in,
        partial(lifecycle.convene, consultation_in=consultation_in),
    )


@router.post(
    "/{alert_id}/outreach",
    summary="Log Good Offices outreach after a consultation (co-chairs)",
    response_model=AlertPublic,
    responses=_STEP_RESPONSES,
)
async def outreach(
    alert_id: AlertId, outreach_in: OutreachCreate, principal: CoChair, steps: Steps
) -> Response:
    return await steps.run(
        "outreach_logged",
        alert_id,
        principal,
        outreach_in,
        partial(lifecycle.log_outreach, outreach_in=outreach_in),
    )


@router.post(
    "/{alert_id}/resolve",
    summary="Resolve the alert with a summary (co-chairs)",
    response_model=AlertPublic,
    responses=_STEP_RESPONSES,
)
async def resolve(
    alert_id: AlertId, resolution_in: ResolutionCreate, principal: CoChair, steps: Steps
) -> Response:
    return await steps.run(
        "resolved",
        alert_id,
        principal,
        resolution_in,
        partial(lifecycle.resolve, resolution_in=resolution_in),
    )


@router.post(
    "/{alert_id}/withdraw",
    summary="Withdraw the alert (the raising member or a co-chair)",
    response_model=AlertPublic,
    responses=_STEP_RESPONSES,
)
async def withdraw(
    alert_id: AlertId, principal: PlatformCaller, steps: Steps, reason_in: OptionalReason = None
) -> Response:
    reason = reason_in or ReasonCreate()
    return await steps.run(
        "withdrawn", alert_id, principal, reason, partial(lifecycle.withdraw, reason_in=reason)
    )


@router.post(
    "/{alert_id}/reopen",
    summary="Reopen a resolved or withdrawn alert within the reopen period",
    description="The raising member or a co-chair; the alert returns to the status it was "
    "closed from. After the period, raise a new alert.",
    response_model=AlertPublic,
    responses=_STEP_RESPONSES,
)
async def reopen(
    alert_id: AlertId, principal: PlatformCaller, steps: Steps, reason_in: OptionalReason = None
) -> Response:
    reason = reason_in or ReasonCreate()
    return await steps.run(
        "reopened",
        alert_id,
        principal,
        reason,
        partial(lifecycle.reopen, reason_in=reason, settings=steps.settings),
    )
