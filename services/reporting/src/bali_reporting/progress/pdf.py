"""The progress report as PDF, drawn with ReportLab's page layout (pure Python: nothing to
install beside the wheel, so it renders on an air-gapped host as on a laptop)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import TypeVar
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import (
    Flowable,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from bali_reporting.progress.durations import human_duration
from bali_reporting.progress.report import ProgressReport

Named = TypeVar("Named", bound=Enum)
_STYLES = getSampleStyleSheet()
_BODY = _STYLES["BodyText"]
_SMALL = ParagraphStyle("small", parent=_BODY, fontSize=8, leading=10)
_CELL = ParagraphStyle("cell", parent=_BODY, fontSize=8.5, leading=10.5)
_GRID = TableStyle(
    [
        ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#8a8a8a")),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef4")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("FONTSIZE", (0, 0), (-1, -1), 8.5),
    ]
)


def _p(text: object, style: ParagraphStyle = _CELL) -> Paragraph:
    return Paragraph(escape(str(text)), style)


def _table(
    header: Sequence[str], rows: Sequence[Sequence[object]], widths: Sequence[float]
) -> Table:
    cells = [[_p(h) for h in header], *[[_p(c) for c in row] for row in rows]]
    table = Table(cells, colWidths=list(widths), repeatRows=1)
    table.setStyle(_GRID)
    return table


def _counts(counts: Mapping[Named, int]) -> str:
    return ", ".join(f"{k.value.replace('_', ' ')} {n}" for k, n in counts.items()) or "none"


def render_pdf(report: ProgressReport) -> bytes:
    """A4 portrait, the sections in the order of the HTML report."""
    out = io.BytesIO()
    document = SimpleDocTemplate(
        out,
        pagesize=A4,
        title=f"Bali Process progress report {report.year}",
        author="Bali Process Regional Support Office",
        leftMargin=16 * mm,
        rightMargin=16 * mm,
        topMargin=16 * mm,
        bottomMargin=16 * mm,
    )
    story: list[Flowable] = [
        Paragraph(f"Bali Process: progress report {report.year}", _STYLES["Title"]),
        _p(
            f"Adelaide Strategy for Cooperation ({report.strategy_id}). Figures as of "
            f"{report.generated_at:%d %B %Y %H:%M} UTC.",
            _BODY,
        ),
        Paragraph("Progress by area and item", _STYLES["Heading1"]),
    ]
    for area in report.areas:
        rows = [
            [
                item.item,
                item.text,
                f"{item.activities} ({_counts(item.by_status)})"
                if item.activities
                else "not covered",
                "; ".join(
                    f"{c.name or c.member_id} ({c.role}, {c.activities})" for c in item.contributors
                )
                or "—",
            ]
            for item in area.items
        ]
        story.append(
            KeepTogether(
                [
                    Paragraph(f"Area {area.area}: {escape(area.name)}", _STYLES["Heading2"]),
                    _p(
                        f"{area.activities} activities started in {report.year} "
                        f"({_counts(area.by_type)}).",
                        _BODY,
                    ),
                    _table(
                        ["Item", "Strategy text", "Activities", "By whom (role, activities)"],
                        rows,
                        [12 * mm, 70 * mm, 35 * mm, 61 * mm],
                    ),
                ]
            )
        )
    story.append(Paragraph("Items not covered", _STYLES["Heading1"]))
    if report.uncovered:
        story.append(
            _table(
                ["Item", "Area", "Strategy text"],
                [[u.item, u.area, u.text] for u in report.uncovered],
                [12 * mm, 12 * mm, 154 * mm],
            )
        )
    else:
        story.append(_p("Every item was served by at least one activity.", _BODY))
    story.append(Paragraph("Indicator totals", _STYLES["Heading1"]))
    if report.indicators:
        story.append(
            _table(
                ["Indicator", "Total", "Female", "Male", "Other", "By age"],
                [
                    [
                        row.indicator + (f" ({row.unit})" if row.unit else ""),
                        row.value,
                        row.by_sex.female,
                        row.by_sex.male,
                        row.by_sex.other,
                        ", ".join(f"{a.age_group}: {a.value}" for a in row.by_age) or "—",
                    ]
                    for row in report.indicators
                ],
                [55 * mm, 18 * mm, 18 * mm, 18 * mm, 18 * mm, 51 * mm],
            )
        )
    else:
        story.append(_p("No outputs were recorded.", _BODY))
    alerts = report.alerts
    story += [
        Paragraph("Consultation Mechanism alerts handled", _STYLES["Heading1"]),
        _p(
            f"{alerts.total} alerts raised in {report.year}. By status: "
            f"{_counts(alerts.by_status)}. By severity: {_counts(alerts.by_severity)}.",
            _BODY,
        ),
        Spacer(1, 3 * mm),
    ]
    if alerts.response_times:
        story.append(
            _table(
                ["Severity", "Alerts", "Acknowledge (median / p90)", "Convene", "Resolve"],
                [
                    [
                        cell.severity.value,
                        cell.alerts,
                        *(
                            f"{human_duration(d.median_s)} / {human_duration(d.p90_s)}"
                            for d in (cell.acknowledge, cell.convene, cell.resolve)
                        ),
                    ]
                    for cell in alerts.response_times
                ],
                [25 * mm, 16 * mm, 46 * mm, 46 * mm, 45 * mm],
            )
        )
        story.append(Spacer(1, 3 * mm))
    if alerts.listed:
        story.append(
            _table(
                ["Raised", "Alert", "Severity", "Status", "Acknowledged", "Resolved"],
                [
                    [
                        f"{a.raised_at:%d %b %Y}",
                        f"{a.title} (raised by {a.raised_by})",
                        a.severity.value,
                        a.status.value.replace("_", " "),
                        human_duration(a.to_acknowledge_s),
                        human_duration(a.to_resolve_s),
                    ]
                    for a in alerts.listed
                ],
                [22 * mm, 68 * mm, 20 * mm, 26 * mm, 21 * mm, 21 * mm],
            )
        )
        if alerts.total > len(alerts.listed):
            story.append(
                _p(
                    f"The newest {len(alerts.listed)} of {alerts.total} are listed; "
                    "/v1/reports/alerts/export has them all.",
                    _SMALL,
                )
            )
    document.build(story)
    return out.getvalue()
