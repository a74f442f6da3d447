"""The dashboard's pages: thin adapters that sign the viewer in, read the projections'
queries (the same ones the reports call) and render a template.

Pages live outside `/v1` and out of the OpenAPI document: they are for people, the
reports are the API. A page with bad filters answers like the API (422 naming the field).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from bali_common.deps import RuntimeDep
from bali_common.events.alerts import AlertStatus
from bali_common.http.pagination import PageRequest
from fastapi import APIRouter, Depends, Form, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse

from bali_reporting.dashboard import charts
from bali_reporting.dashboard.signin import (
    COOKIE,
    DashboardUser,
    Reason,
    SignInRequired,
    User,
    safe_next,
    same_origin,
    set_token_cookie,
    verify,
)
from bali_reporting.dashboard.view_filters import ViewFilters, view_filters
from bali_reporting.deps import PartsDep, SessionDep, SettingsDep
from bali_reporting.exports import FormatQuery
from bali_reporting.progress.documents import DocumentFormatQuery, chosen_format, progress_document
from bali_reporting.progress.report import progress_report
from bali_reporting.projections import (
    alerts,
    coverage,
    deliveries,
    follow_up,
    indicators,
    pipeline,
    response_times,
    trends,
)
from bali_reporting.routes import exports
from bali_reporting.routes.progress import ReportYear

router = APIRouter(include_in_schema=False)

Filters = Annotated[ViewFilters, Depends(view_filters)]
#: Alerts the board lists (newest first); the counts above it cover every matching alert.
BOARD_ROWS = 50
INDICATOR_ROWS = 500
_REASONS: dict[str, str] = {
    "required": "Sign in with a bearer token to open the dashboard.",
    "invalid": "That token was not accepted: it is malformed or not signed by a trusted key.",
    "expired": "That token has expired: ask for a new one (locally: bali token).",
    "forbidden": "That token carries no role that may read reports (member, co_chair, ops "
    "or admin).",
    "signed-out": "You are signed out.",
    "cross-site": "Sign in from this site's own sign-in page.",
}
_NAV = (
    ("/", "Alerts"),
    ("/coverage", "Coverage"),
    ("/activity", "Activity"),
    ("/operations", "Operations"),
)


def _page(
    parts: PartsDep,
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
) -> HTMLResponse:
    return parts.templates.TemplateResponse(
        request,
        name,
        {"nav": _NAV, "path": request.url.path, **context},
        status_code=status_code,
        headers={"Cache-Control": "no-store"},
    )


# --- sign-in -------------------------------------------------------------------------------------


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(
    request: Request,
    parts: PartsDep,
    reason: Annotated[str | None, Query(max_length=20)] = None,
    next_page: Annotated[str | None, Query(alias="next", max_length=2000)] = None,
) -> HTMLResponse:
    return _page(
        parts,
        request,
        "dashboard/sign_in.html",
        {"message": _REASONS.get(reason or ""), "next": safe_next(next_page), "user": None},
    )


@router.post("/sign-in", response_model=None)
async def sign_in(
    request: Request,
    parts: PartsDep,
    token: Annotated[str, Form(max_length=8192)] = "",
    next_page: Annotated[str, Form(alias="next", max_length=2000)] = "/",
) -> Response:
    """A valid token goes into the cookie; a refused one shows the form again, with why."""
    token = token.strip()
    reason: Reason | None = None
    if not same_origin(request):
        reason = "cross-site"
    elif not token:
        reason = "required"
    else:
        try:
            await verify(request, token)
        except SignInRequired as refused:
            reason = refused.reason
    if reason is not None:
        return _page(
            parts,
            request,
            "dashboard/sign_in.html",
            {"message": _REASONS[reason], "next": safe_next(next_page), "user": None},
            status_code=401 if reason in ("required", "invalid", "expired") else 403,
        )
    response = RedirectResponse(safe_next(next_page), status_code=303)
    set_token_cookie(response, request, token)
    return response


@router.post("/sign-out", response_model=None)
async def sign_out(request: Request) -> Response:
    if not same_origin(request):
        return Response(status_code=403)
    response = RedirectResponse("/sign-in?reason=signed-out", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


# --- pages --------------------------------------------------------------------------------------


async def _board(
    session: SessionDep, user: DashboardUser, filters: ViewFilters, parts: PartsDep
) -> alerts.AlertBoard:
    return await alerts.alert_board(
        session,
        filters.alerts(),
        viewer=user.viewer,
        now=parts.clock(),
        page=PageRequest(page_size=BOARD_ROWS),
    )


@router.get("/", response_class=HTMLResponse)
async def overview(
    request: Request, session: SessionDep, parts: PartsDep, user: User, filters: Filters
) -> HTMLResponse:
    signature = await alerts.board_signature(session)
    board = await _board(session, user, filters, parts)
    covered = await coverage.coverage_report(session, filters.coverage())
    trend = await trends.trends_report(session, filters.trends())
    open_alerts = sum(
        n for status, n in board.by_status.items() if status.value not in alerts.CLOSED
    )
    return _page(
        parts,
        request,
        "dashboard/overview.html",
        {
            "user": user,
            "filters": filters,
            "board": board,
            "board_signature": signature,
            "board_rows": BOARD_ROWS,
            "open_alerts": open_alerts,
            "covered_items": sum(1 for item in covered.items if item.covered),
            "items": len(covered.items),
            "activities": sum(cell.activities for cell in trend.totals),
            "area_map": charts.area_heat_map(covered),
        },
    )


@router.get("/coverage", response_class=HTMLResponse)
async def coverage_page(
    request: Request, session: SessionDep, parts: PartsDep, user: User, filters: Filters
) -> HTMLResponse:
    covered = await coverage.coverage_report(session, filters.coverage())
    return _page(
        parts,
        request,
        "dashboard/coverage.html",
        {
            "user": user,
            "filters": filters,
            "report": covered,
            "item_map": charts.item_heat_map(covered),
            "area_map": charts.area_heat_map(covered),
        },
    )


@router.get("/activity", response_class=HTMLResponse)
async def activity_page(
    request: Request, session: SessionDep, parts: PartsDep, user: User, filters: Filters
) -> HTMLResponse:
    trend = await trends.trends_report(session, filters.trends())
    outputs = await indicators.indicators_report(
        session, filters.indicators(), PageRequest(page_size=INDICATOR_ROWS)
    )
    totals = [row for row in outputs.items if row.item is None or filters.area is not None]
    return _page(
        parts,
        request,
        "dashboard/activity.html",
        {
            "user": user,
            "filters": filters,
            "trend": trend,
            "charts": charts.area_trends(trend),
            "indicators": totals,
            "widest": charts.largest(row.value for row in totals),
        },
    )


@router.get("/operations", response_class=HTMLResponse)
async def operations_page(
    request: Request, session: SessionDep, parts: PartsDep, user: User, filters: Filters
) -> HTMLResponse:
    if not user.operator:
        return _page(
            parts,
            request,
            "dashboard/operations.html",
            {"user": user, "filters": filters, "allowed": False},
            status_code=403,
        )
    times = await response_times.response_times_report(
        session, filters.response_times(), viewer=user.viewer
    )
    delivery = await deliveries.delivery_health(
        session, filters.deliveries(), viewer=user.viewer, page=PageRequest(page_size=20)
    )
    health = await pipeline.pipeline_health(session, parts.scraper, now=parts.clock())
    return _page(
        parts,
        request,
        "dashboard/operations.html",
        {
            "user": user,
            "filters": filters,
            "allowed": True,
            "times": times,
            "slowest": charts.largest(
                d.p90_s for c in times.overall for d in (c.acknowledge, c.convene, c.resolve)
            ),
            "delivery": delivery,
            "pipeline": health,
        },
    )


@router.get("/alerts/{alert_id}", response_class=HTMLResponse)
async def alert_page(
    request: Request,
    session: SessionDep,
    parts: PartsDep,
    user: User,
    filters: Filters,
    alert_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")],
) -> HTMLResponse:
    """The alert's timeline as reporting knows it: each milestone and its last step."""
    row = await alerts.board_entry(session, alert_id, viewer=user.viewer, now=parts.clock())
    steps: list[tuple[Any, str]] = []
    follow_ups = await follow_up.follow_ups_of(session, alert_id) if row is not None else []
    if row is not None:
        steps.append((row.raised_at, f"Raised by {row.raised_by.name or row.raised_by.member_id}"))
        if row.acknowledged_at:
            steps.append((row.acknowledged_at, "Acknowledged"))
        if row.convened_at:
            steps.append((row.convened_at, "Consultation convened"))
        if row.closed_at:
            closed = "Resolved" if row.status is AlertStatus.resolved else "Withdrawn"
            steps.append((row.closed_at, closed))
        last = row.last_step
        steps.append((last.at, f"Last step: {last.step.replace('_', ' ')} by {last.by or '?'}"))
        steps.sort(key=lambda step: step[0])
    return _page(
        parts,
        request,
        "dashboard/alert.html",
        {
            "user": user,
            "filters": filters,
            "alert": row,
            "steps": steps,
            "alert_id": alert_id,
            "follow_ups": follow_ups,
        },
        status_code=200 if row is not None else 404,
    )


@router.get("/progress/{year}", response_model=None)
async def progress_page(
    request: Request,
    session: SessionDep,
    parts: PartsDep,
    user: User,
    year: ReportYear,
    file_format: DocumentFormatQuery = None,
) -> Response:
    """The API's progress report for a signed-in browser (the API wants a bearer header)."""
    report = await progress_report(session, year, viewer=user.viewer, now=parts.clock())
    return await progress_document(
        request, parts.templates, report, chosen_format(request, file_format)
    )


Download = Literal["coverage", "trends", "indicators", "alerts"]


@router.get("/download/{report}", response_model=None)
async def download(
    session: SessionDep,
    parts: PartsDep,
    settings: SettingsDep,
    user: User,
    filters: Filters,
    report: Download,
    file_format: FormatQuery = "csv",
) -> Response:
    """The API's export of the report the page shows, for a browser signed in by cookie:
    the export routes' own functions, with this view's filters."""
    reader, now = user.principal, parts.clock()
    if report == "coverage":
        return await exports.export_coverage(session, reader, filters.coverage(), now, file_format)
    if report == "trends":
        return await exports.export_trends(session, reader, filters.trends(), now, file_format)
    if report == "indicators":
        return await exports.export_indicators(
            session, settings, reader, filters.indicators(), file_format
        )
    return await exports.export_alerts(
        session, settings, reader, user.viewer, filters.alerts(), now, file_format
    )


# --- the live board -----------------------------------------------------------------------------


def _event(name: str, data: str) -> str:
    """One server-sent event; every line of the data gets its own `data:` field."""
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    return f"event: {name}\n{lines}\n"


@router.get("/dashboard/board-events")
async def board_events(
    request: Request,
    runtime: RuntimeDep,
    parts: PartsDep,
    settings: SettingsDep,
    user: User,
    filters: Filters,
    since: Annotated[str | None, Query(max_length=64, pattern="^[0-9a-f]+$")] = None,
) -> StreamingResponse:
    """The board's rows as a server-sent event whenever any alert changes.

    It polls a cheap signature of the board (count, newest step, sum of versions) and
    renders only when that moved (`since`: the signature the page was rendered at). Each
    poll takes a short session of its own, so an open
    stream holds no connection. A stream ends after `dashboard_stream_s` and the browser
    reconnects, which checks the token again.
    """
    template = parts.templates.get_template("dashboard/_board.html")

    async def stream() -> AsyncIterator[str]:
        yield f"retry: {int(settings.dashboard_poll_s * 2000)}\n\n"
        seen = since
        quiet_since = time.monotonic()
        ends = time.monotonic() + settings.dashboard_stream_s
        while time.monotonic() < ends and not await request.is_disconnected():
            async with runtime.sessions() as session:
                signature = await alerts.board_signature(session)
                if signature != seen:
                    board = await _board(session, user, filters, parts)
                    html = template.render(board=board, board_rows=BOARD_ROWS, filters=filters)
                    seen = signature
                    quiet_since = time.monotonic()
                    yield _event("board", html)
            if time.monotonic() - quiet_since > 15:
                quiet_since = time.monotonic()
                yield ": still here\n\n"
            await asyncio.sleep(settings.dashboard_poll_s)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# --- static files -------------------------------------------------------------------------------


@router.get("/static/{name}")
async def static_file(parts: PartsDep, name: Annotated[str, Path(max_length=100)]) -> Response:
    """Served from the package, addressed by content hash: cached for a year."""
    found = parts.static.get(name)
    if found is None:
        return Response(status_code=404)
    return Response(
        found.content,
        media_type=found.media_type,
        headers={"Cache-Control": "public, max-age=31536000, immutable"},
    )
