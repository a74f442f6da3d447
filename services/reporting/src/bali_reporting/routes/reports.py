"""The reports as JSON: `GET /v1/reports/<name>` with filters in the query string."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from bali_common.http.pagination import PageRequestDep
from bali_common.problems import problem_responses
from fastapi import APIRouter, Depends

from bali_reporting import filters as f
from bali_reporting.deps import Now, Operator, PartsDep, Reader, SessionDep, Viewer
from bali_reporting.filters import ReportFilters
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

router = APIRouter(prefix="/v1/reports", tags=["reports"])

_READ = problem_responses(401, 403, 422)
CoverageFilters = Annotated[ReportFilters, Depends(f.coverage_filters)]
TrendFilters = Annotated[ReportFilters, Depends(f.trend_filters)]
IndicatorFilters = Annotated[ReportFilters, Depends(f.indicator_filters)]
AlertFilters = Annotated[ReportFilters, Depends(f.alert_filters)]
ResponseTimeFilters = Annotated[ReportFilters, Depends(f.response_time_filters)]
DeliveryFilters = Annotated[ReportFilters, Depends(f.delivery_filters)]
FollowUpFilters = Annotated[ReportFilters, Depends(f.follow_up_filters)]


def this_year(filters: ReportFilters, now: Now) -> ReportFilters:
    return filters.with_year_default(now.year)


def this_year_range(filters: ReportFilters, now: Now) -> ReportFilters:
    """Trends without dates: the current calendar year."""
    if filters.date_from is None and filters.date_to is None:
        return ReportFilters(
            date_from=date(now.year, 1, 1), date_to=date(now.year, 12, 31), area=filters.area
        )
    return filters


@router.get(
    "/coverage",
    response_model=coverage.CoverageReport,
    responses=_READ,
    summary="Strategy coverage: the 25 items by member, role and activity status",
    description="Activities counted in every year their period overlaps (`year`, default "
    "this year). `uncovered_items` are items no planned, ongoing or completed activity "
    "serves that year. `member` narrows the member lists; `area`/`item` the items.",
)
async def coverage_report(
    session: SessionDep, _reader: Reader, filters: CoverageFilters, now: Now
) -> coverage.CoverageReport:
    return await coverage.coverage_report(session, this_year(filters, now))


@router.get(
    "/trends",
    response_model=trends.TrendsReport,
    responses=_READ,
    summary="Activities per strategy area and month they start, by status and type",
    description="`date_from`/`date_to` select the months (default: this calendar year).",
)
async def trends_report(
    session: SessionDep, _reader: Reader, filters: TrendFilters, now: Now
) -> trends.TrendsReport:
    return await trends.trends_report(session, this_year_range(filters, now))


@router.get(
    "/indicators",
    response_model=indicators.IndicatorsReport,
    responses=_READ,
    summary="Output totals per indicator, item and year, with sex and age breakdowns",
    description="Cursor-paginated. Rows with `item` null count each output once over all "
    "items; `item`/`area` filters show the per-item rows only.",
)
async def indicators_report(
    session: SessionDep, _reader: Reader, filters: IndicatorFilters, page: PageRequestDep
) -> indicators.IndicatorsReport:
    return await indicators.indicators_report(session, filters, page)


@router.get(
    "/alerts",
    response_model=alerts.AlertBoard,
    responses=_READ,
    summary="The alert board: the alerts you may see, newest first",
    description="Restricted alerts only for the co-chairs, admins and the members they name. "
    "Cursor-paginated; `by_status`/`by_severity` count every matching alert. `member`: "
    "alerts raised by or affecting that member.",
)
async def alert_board(
    session: SessionDep,
    _reader: Reader,
    viewer: Viewer,
    filters: AlertFilters,
    page: PageRequestDep,
    now: Now,
) -> alerts.AlertBoard:
    return await alerts.alert_board(session, filters, viewer=viewer, now=now, page=page)


@router.get(
    "/response-times",
    response_model=response_times.ResponseTimesReport,
    responses=_READ,
    summary="Time to acknowledge, convene and resolve: median and p90 by severity and quarter",
    description="Over the alerts you may see, raised within the date range.",
)
async def response_times_report(
    session: SessionDep, _operator: Operator, viewer: Viewer, filters: ResponseTimeFilters
) -> response_times.ResponseTimesReport:
    return await response_times.response_times_report(session, filters, viewer=viewer)


@router.get(
    "/deliveries",
    response_model=deliveries.DeliveryHealthReport,
    responses=_READ,
    summary="Delivery health per channel, and the deliveries that were given up or warned",
    description="Channel figures count every delivery first attempted in the range; the "
    "listed deliveries (cursor-paginated) are those of alerts you may see.",
)
async def delivery_health(
    session: SessionDep,
    _operator: Operator,
    viewer: Viewer,
    filters: DeliveryFilters,
    page: PageRequestDep,
) -> deliveries.DeliveryHealthReport:
    return await deliveries.delivery_health(session, filters, viewer=viewer, page=page)


@router.get(
    "/pipeline",
    response_model=pipeline.PipelineHealth,
    responses=_READ,
    summary="Pipeline health: consumer lag, outbox backlog and dead letters of every service",
    description="Read now from each service's /metrics (a slow or down service shows as "
    "unreachable), with the events this service has received by type.",
)
async def pipeline_health(
    session: SessionDep, _operator: Operator, parts: PartsDep, now: Now
) -> pipeline.PipelineHealth:
    return await pipeline.pipeline_health(session, parts.scraper, now=now)


@router.get(
    "/follow-up",
    response_model=follow_up.FollowUpReport,
    responses=_READ,
    summary="Activities that follow up an alert, with the alert",
    description="Activities whose `related_alert_id` names an alert you may see, newest "
    "first (cursor-paginated); `severity` is the alert's.",
)
async def follow_up_report(
    session: SessionDep,
    _operator: Operator,
    viewer: Viewer,
    filters: FollowUpFilters,
    page: PageRequestDep,
    now: Now,
) -> follow_up.FollowUpReport:
    return await follow_up.follow_up_report(session, filters, viewer=viewer, now=now, page=page)


legacy = APIRouter(prefix="/v1/pipeline", tags=["reports"])


@legacy.get(
    "/event-counts",
    response_model=pipeline.EventTalliesPublic,
    responses=problem_responses(401, 403),
    summary="Events delivered to reporting, by type (also in /v1/reports/pipeline)",
)
async def event_counts(session: SessionDep, _operator: Operator) -> pipeline.EventTalliesPublic:
    items = await pipeline.event_tallies(session)
    return pipeline.EventTalliesPublic(items=items, total=sum(item.count for item in items))
