"""The reports as CSV or XLSX: `GET /v1/reports/<name>/export?format=csv|xlsx` (see `exports`)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from bali_reporting.deps import Now, Operator, PartsDep, Reader, SessionDep, SettingsDep, Viewer
from bali_reporting.exports import (
    FormatQuery,
    export_page,
    export_responses,
    spreadsheet,
    too_many_rows,
)
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
from bali_reporting.routes.reports import (
    AlertFilters,
    CoverageFilters,
    DeliveryFilters,
    FollowUpFilters,
    IndicatorFilters,
    ResponseTimeFilters,
    TrendFilters,
    this_year,
    this_year_range,
)

router = APIRouter(prefix="/v1/reports", tags=["exports"])


@router.get(
    "/coverage/export",
    response_class=Response,
    responses=export_responses(coverage.COLUMNS),
    summary="Strategy coverage as CSV or XLSX",
    description="One row per item, member, role and status; an uncovered item has one row.",
)
async def export_coverage(
    session: SessionDep,
    _reader: Reader,
    filters: CoverageFilters,
    now: Now,
    file_format: FormatQuery = "csv",
) -> Response:
    report = await coverage.coverage_report(session, this_year(filters, now))
    return await spreadsheet(
        f"coverage-{report.year}", file_format, coverage.COLUMNS, coverage.rows(report)
    )


@router.get(
    "/trends/export",
    response_class=Response,
    responses=export_responses(trends.COLUMNS),
    summary="Activity trends as CSV or XLSX",
    description="Per-area rows, then the all-area totals (empty area).",
)
async def export_trends(
    session: SessionDep,
    _reader: Reader,
    filters: TrendFilters,
    now: Now,
    file_format: FormatQuery = "csv",
) -> Response:
    report = await trends.trends_report(session, this_year_range(filters, now))
    return await spreadsheet("trends", file_format, trends.COLUMNS, trends.rows(report))


@router.get(
    "/indicators/export",
    response_class=Response,
    responses=export_responses(indicators.COLUMNS),
    summary="Indicator totals as CSV or XLSX",
    description="Every matching row; `by_age` holds 'group:value' parts separated by ';'.",
)
async def export_indicators(
    session: SessionDep,
    settings: SettingsDep,
    _reader: Reader,
    filters: IndicatorFilters,
    file_format: FormatQuery = "csv",
) -> Response:
    report = await indicators.indicators_report(
        session, filters, export_page(settings.export_max_rows)
    )
    if report.next_cursor is not None:
        raise too_many_rows(settings.export_max_rows)
    return await spreadsheet("indicators", file_format, indicators.COLUMNS, indicators.rows(report))


@router.get(
    "/alerts/export",
    response_class=Response,
    responses=export_responses(alerts.COLUMNS),
    summary="The alert board as CSV or XLSX",
    description="Every matching alert you may see, newest first.",
)
async def export_alerts(
    session: SessionDep,
    settings: SettingsDep,
    _reader: Reader,
    viewer: Viewer,
    filters: AlertFilters,
    now: Now,
    file_format: FormatQuery = "csv",
) -> Response:
    page = export_page(settings.export_max_rows)
    board = await alerts.alert_board(session, filters, viewer=viewer, now=now, page=page)
    if board.next_cursor is not None:
        raise too_many_rows(settings.export_max_rows)
    return await spreadsheet("alerts", file_format, alerts.COLUMNS, alerts.rows(board))


@router.get(
    "/response-times/export",
    response_class=Response,
    responses=export_responses(response_times.COLUMNS),
    summary="Alert response times as CSV or XLSX",
    description="By severity and quarter, then by severity over the range (empty quarter).",
)
async def export_response_times(
    session: SessionDep,
    _operator: Operator,
    viewer: Viewer,
    filters: ResponseTimeFilters,
    file_format: FormatQuery = "csv",
) -> Response:
    report = await response_times.response_times_report(session, filters, viewer=viewer)
    return await spreadsheet(
        "response-times", file_format, response_times.COLUMNS, response_times.rows(report)
    )


@router.get(
    "/deliveries/export",
    response_class=Response,
    responses=export_responses(deliveries.CHANNEL_COLUMNS),
    summary="Delivery health per channel as CSV or XLSX",
    description="The channel figures (the listed deliveries are in the JSON report).",
)
async def export_deliveries(
    session: SessionDep,
    _operator: Operator,
    viewer: Viewer,
    filters: DeliveryFilters,
    file_format: FormatQuery = "csv",
) -> Response:
    report = await deliveries.delivery_health(session, filters, viewer=viewer, page=export_page(1))
    return await spreadsheet(
        "deliveries", file_format, deliveries.CHANNEL_COLUMNS, deliveries.rows(report)
    )


@router.get(
    "/pipeline/export",
    response_class=Response,
    responses=export_responses(pipeline.COLUMNS),
    summary="Pipeline health as CSV or XLSX",
    description="One row per service and consumer group.",
)
async def export_pipeline(
    session: SessionDep,
    _operator: Operator,
    parts: PartsDep,
    now: Now,
    file_format: FormatQuery = "csv",
) -> Response:
    report = await pipeline.pipeline_health(session, parts.scraper, now=now)
    return await spreadsheet("pipeline", file_format, pipeline.COLUMNS, pipeline.rows(report))


@router.get(
    "/follow-up/export",
    response_class=Response,
    responses=export_responses(follow_up.COLUMNS),
    summary="Alert follow-up activities as CSV or XLSX",
    description="Every matching activity, newest first, with its alert when you may see it.",
)
async def export_follow_up(
    session: SessionDep,
    settings: SettingsDep,
    _operator: Operator,
    viewer: Viewer,
    filters: FollowUpFilters,
    now: Now,
    file_format: FormatQuery = "csv",
) -> Response:
    page = export_page(settings.export_max_rows)
    report = await follow_up.follow_up_report(session, filters, viewer=viewer, now=now, page=page)
    if report.next_cursor is not None:
        raise too_many_rows(settings.export_max_rows)
    return await spreadsheet("follow-up", file_format, follow_up.COLUMNS, follow_up.rows(report))
