"""Chart data for the templates, drawn as SVG or CSS by the server: no chart script to ship.

Colours come from palettes that colour-blind readers can tell apart (a single-hue blue
ramp for amounts, the Okabe-Ito set for categories), and every mark also carries its
number or name as text, so no figure depends on colour alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bali_common.catalogue import load_strategy
from bali_common.events.alerts import Severity

from bali_reporting.projections.coverage import CoverageReport
from bali_reporting.projections.trends import TrendsReport

STRATEGY = load_strategy()
#: Steps of the heat map (ColorBrewer "Blues", safe for every kind of colour blindness).
HEAT_STEPS = 5

#: Severity as colour (Okabe-Ito), shape and word together.
SEVERITY_LOOK: dict[str, tuple[str, str]] = {
    Severity.extreme.value: ("sev-extreme", "◆"),
    Severity.severe.value: ("sev-severe", "▲"),
    Severity.moderate.value: ("sev-moderate", "●"),
    Severity.minor.value: ("sev-minor", "○"),
    Severity.unknown.value: ("sev-unknown", "?"),
}


def heat_level(value: int, highest: int) -> int:
    """0 for nothing, then 1..HEAT_STEPS in proportion to the highest cell."""
    if value <= 0 or highest <= 0:
        return 0
    return max(1, min(HEAT_STEPS, -(-value * HEAT_STEPS // highest)))


@dataclass(frozen=True)
class HeatRow:
    key: int
    label: str
    title: str
    cells: list[tuple[int, int]]  # (activities, heat level) per member column
    total: int
    covered: bool


@dataclass(frozen=True)
class HeatMap:
    members: list[tuple[str, str]]  # (member id, name)
    rows: list[HeatRow]


def _members(report: CoverageReport) -> list[tuple[str, str]]:
    ids = sorted({m.member_id for item in report.items for m in item.members})
    return [(m, report.member_names.get(m, m)) for m in ids]


def _heat_map(
    members: list[tuple[str, str]],
    counts: dict[tuple[int, str], int],
    rows: Iterable[tuple[int, str, int, bool]],
) -> HeatMap:
    """`rows`: (number, title, total, covered); `counts`: (number, member) -> activities."""
    highest = max(counts.values(), default=0)
    return HeatMap(
        members=members,
        rows=[
            HeatRow(
                key=number,
                label=str(number),
                title=title,
                cells=[
                    (counts[(number, m)], heat_level(counts[(number, m)], highest))
                    for m, _ in members
                ],
                total=total,
                covered=covered,
            )
            for number, title, total, covered in rows
        ],
    )


def item_heat_map(report: CoverageReport) -> HeatMap:
    """Items x members: activities a member leads or joins for the item."""
    counts: dict[tuple[int, str], int] = defaultdict(int)
    for item in report.items:
        for member in item.members:
            counts[(item.item, member.member_id)] += member.activities
    return _heat_map(
        _members(report),
        counts,
        ((item.item, item.text, item.activities, item.covered) for item in report.items),
    )


def area_heat_map(report: CoverageReport) -> HeatMap:
    """Areas x members: the member's activities over the area's items (an activity serving
    two items of an area counts for each, as the item rows do)."""
    counts: dict[tuple[int, str], int] = defaultdict(int)
    totals: dict[int, int] = defaultdict(int)
    covered: dict[int, list[bool]] = defaultdict(list)
    for item in report.items:
        totals[item.area] += item.activities
        covered[item.area].append(item.covered)
        for member in item.members:
            counts[(item.area, member.member_id)] += member.activities
    return _heat_map(
        _members(report),
        counts,
        (
            (area.number, area.name, totals[area.number], all(covered[area.number]))
            for area in STRATEGY.areas
            if area.number in covered
        ),
    )


@dataclass(frozen=True)
class Column:
    x: float
    y: float
    height: float
    value: int
    label: str


@dataclass(frozen=True)
class ColumnChart:
    """A small column chart in an SVG of `width` x `height` (the bars' area, labels below)."""

    title: str
    columns: list[Column]
    width: int
    height: int
    bar_width: float
    total: int
    highest: int


def column_chart(
    title: str, values: Sequence[tuple[str, int]], *, highest: int, height: int = 60
) -> ColumnChart:
    step = 22.0
    bar_width = 16.0
    scale = height / highest if highest else 0.0
    columns = []
    for index, (label, value) in enumerate(values):
        bar = value * scale
        columns.append(
            Column(x=index * step + 3, y=height - bar, height=bar, value=value, label=label)
        )
    return ColumnChart(
        title=title,
        columns=columns,
        width=int(len(values) * step) + 6,
        height=height,
        bar_width=bar_width,
        total=sum(v for _, v in values),
        highest=highest,
    )


def area_trends(report: TrendsReport) -> list[ColumnChart]:
    """One chart per area, activities by month they start, on one scale so areas compare."""
    per_area: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for cell in report.cells:
        if cell.area is not None and cell.month is not None:
            per_area[cell.area][cell.month] += cell.activities
    highest = max((n for months in per_area.values() for n in months.values()), default=0)
    return [
        column_chart(
            f"{number}. {name}",
            [(month[5:], per_area[number].get(month, 0)) for month in report.months],
            highest=highest,
        )
        for number, name in sorted(report.area_names.items())
    ]


def share(value: float | None, highest: float) -> int:
    """Percent of the widest bar, for CSS bar widths."""
    if not value or highest <= 0:
        return 0
    return max(1, round(100 * value / highest))


def largest(values: Iterable[float | None]) -> float:
    return max((v for v in values if v is not None), default=0.0)
