"""`GET /v1/reports/progress/{year}`: the ministerial progress report, as HTML or PDF."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from bali_reporting.deps import Now, PartsDep, Reader, SessionDep, Viewer
from bali_reporting.filters import WholeNumber
from bali_reporting.progress.documents import (
    DocumentFormatQuery,
    chosen_format,
    document_responses,
    progress_document,
)
from bali_reporting.progress.report import progress_report
from bali_reporting.projections.dating import FIRST_YEAR, LAST_YEAR

router = APIRouter(prefix="/v1/reports", tags=["reports"])

ReportYear = Annotated[
    int,
    Path(ge=FIRST_YEAR, le=LAST_YEAR, description="Calendar year reported", examples=[2025]),
    WholeNumber,
]


@router.get(
    "/progress/{year}",
    response_class=Response,
    responses=document_responses(),
    summary="The progress report for the Ministerial Conference, as printable HTML or PDF",
    description="Per strategy area and item: activities by status and the members that led "
    "or joined them; output totals with sex and age breakdowns; items no activity served; "
    "the alerts raised in the year (those you may see) and their response times. "
    "`?format=pdf` or `Accept: application/pdf` gives the PDF.",
)
async def progress(
    request: Request,
    session: SessionDep,
    _reader: Reader,
    viewer: Viewer,
    parts: PartsDep,
    year: ReportYear,
    now: Now,
    file_format: DocumentFormatQuery = None,
) -> Response:
    report = await progress_report(session, year, viewer=viewer, now=now)
    return await progress_document(
        request, parts.templates, report, chosen_format(request, file_format)
    )
