"""HTTP adapters of an alert's lifecycle steps, the one-click acknowledge link among them."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Annotated, Protocol

from bali_common.auth import AuthenticationError, Principal
from bali_common.events.alerts import AlertStatus
from bali_common.http.concurrency import IfMatchHeader
from bali_common.http.idempotency import IdempotentWrite, IdempotentWriteDep, WriteOutcome
from bali_common.problems import ProblemError, problem_responses
from bali_common.visibility import AlertViewer
from fastapi import APIRouter, Body, Depends, Form, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_consultation.alerts import access, lifecycle, links, pages, queries, raising
from bali_consultation.alerts.models import UNACKNOWLEDGED_STATUSES, Alert
from bali_consultation.alerts.routes import AlertId, LinkToken, etag_headers, present
from bali_consultation.alerts.schemas import (
    AlertPublic,
    ConsultationCreate,
    EscalationCreate,
    OutreachCreate,
    ReasonCreate,
    ResolutionCreate,
    SituationUpdateCreate,
)
from bali_consultation.alerts.steps import Step
from bali_consultation.deps import (
    SIGNED_LINK,
    SIGNED_LINK_OR_CO_CHAIR,
    ClientSource,
    CoChair,
    MetricsDep,
    Now,
    OptionalPrincipal,
    PlatformCaller,
    SessionDep,
    SettingsDep,
)
from bali_consultation.metrics import ResponseMetrics
from bali_consultation.settings import ConsultationSettings

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])

#: Withdraw, reopen and escalate may be posted without a body.
_OPTIONAL_BODY = "May be omitted: every field has a default"
OptionalReason = Annotated[ReasonCreate | None, Body(description=_OPTIONAL_BODY)]
OptionalEscalation = Annotated[EscalationCreate | None, Body(description=_OPTIONAL_BODY)]

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
        return JSONResponse(body, headers=etag_headers(alert))
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
