"""The progress report as a response: printable HTML, or the same as PDF.

One convention with the other reports' downloads: `?format=` chooses (`html` or `pdf`);
without it, `Accept: application/pdf` asks for the PDF and anything else gets the HTML.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import anyio.to_thread
from bali_common.problems import problem_responses
from fastapi import Query, Request, Response
from fastapi.templating import Jinja2Templates

from bali_reporting.progress.report import ProgressReport

DocumentFormat = Literal["html", "pdf"]
DocumentFormatQuery = Annotated[
    DocumentFormat | None,
    Query(
        alias="format",
        description="html or pdf; without it the Accept header decides (HTML by default)",
        examples=["pdf"],
    ),
]


def chosen_format(request: Request, asked: DocumentFormat | None) -> DocumentFormat:
    if asked is not None:
        return asked
    accept = request.headers.get("accept", "").lower()
    return "pdf" if "application/pdf" in accept and "text/html" not in accept else "html"


async def progress_document(
    request: Request,
    templates: Jinja2Templates,
    report: ProgressReport,
    file_format: DocumentFormat,
) -> Response:
    name = f"bali-process-progress-{report.year}"
    if file_format == "pdf":
        # ReportLab loads on the first PDF asked for, not in every idle replica (11 MB).
        from bali_reporting.progress.pdf import render_pdf

        content = await anyio.to_thread.run_sync(render_pdf, report)
        return Response(
            content,
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="{name}.pdf"'},
        )
    return templates.TemplateResponse(
        request,
        "progress.html",
        {"report": report, "pdf_url": f"{request.url.path}?format=pdf"},
        headers={"Vary": "Accept"},
    )


def document_responses() -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": "The report as printable HTML (print CSS) or as PDF",
            "content": {
                "text/html": {
                    "schema": {"type": "string"},
                    "example": '<!doctype html><html lang="en"><head><title>Bali Process '
                    "progress report 2025</title>...",
                },
                "application/pdf": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        **problem_responses(401, 403, 422),
    }
