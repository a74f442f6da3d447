"""When an activity happens, as every activity report counts it (decided here once).

An activity starts on its actual start, else its planned start (else an end date if
that is all it has) and ends on its actual end, else its planned end, else the day it
starts. Trends and indicators count it in the month and year it starts; coverage counts
it in every year its period overlaps. An activity without any date is counted under
month and year 0 ("undated"), which date filters leave out.
"""

from __future__ import annotations

from datetime import date

from bali_common.events.activities import ActivitySummary

#: Years the reports know; dates outside are clamped into the range (a typo such as 2205
#: must not fan one activity out over two centuries of coverage rows).
FIRST_YEAR = 2000
LAST_YEAR = 2100
UNDATED = 0


def starts_on(activity: ActivitySummary) -> date | None:
    return (
        activity.actual_start
        or activity.planned_start
        or activity.actual_end
        or activity.planned_end
    )


def ends_on(activity: ActivitySummary) -> date | None:
    start = starts_on(activity)
    end = activity.actual_end or activity.planned_end or start
    if start is None or end is None:
        return None
    return max(start, end)


def _clamped(year: int) -> int:
    return min(max(year, FIRST_YEAR), LAST_YEAR)


def start_year(activity: ActivitySummary) -> int:
    start = starts_on(activity)
    return _clamped(start.year) if start else UNDATED


def start_month(activity: ActivitySummary) -> int:
    """The month it starts as yyyymm (0 when undated)."""
    start = starts_on(activity)
    if start is None:
        return UNDATED
    return _clamped(start.year) * 100 + start.month


def years_spanned(activity: ActivitySummary) -> list[int]:
    start, end = starts_on(activity), ends_on(activity)
    if start is None or end is None:
        return [UNDATED]
    return list(range(_clamped(start.year), _clamped(end.year) + 1))


def day_key(day: date | None) -> int:
    """A day as yyyymmdd (0 for none): sortable, and a plain integer in any database."""
    return day.year * 10_000 + day.month * 100 + day.day if day else UNDATED


def month_text(month: int) -> str | None:
    return f"{month // 100:04d}-{month % 100:02d}" if month else None
