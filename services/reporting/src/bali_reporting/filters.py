"""Report filters: one value type for every report, parsed strictly from the query string.

Dates are `YYYY-MM-DD` only (no timestamps, no other calendars' digits), years and
numbers are bounded, and a bad value is a 422 problem naming `query.<field>`. The
query functions take `ReportFilters`, so pages and documents call them without HTTP.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date
from typing import Annotated

from bali_common.catalogue import load_strategy
from bali_common.events.activities import ActivityStatus
from bali_common.events.alerts import AlertStatus, Severity
from bali_common.events.notifications import Channel
from bali_common.problems import field_error
from fastapi import Query
from pydantic import BeforeValidator

from bali_reporting.projections.dating import FIRST_YEAR, LAST_YEAR

STRATEGY = load_strategy()
MAX_AREA = len(STRATEGY.areas)
MAX_ITEM = len(STRATEGY.items)
_DAY_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_MEMBER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,49}$"


@dataclass(frozen=True)
class ReportFilters:
    """What a report is narrowed to; each report uses the filters that apply to it."""

    date_from: date | None = None
    date_to: date | None = None
    year: int | None = None
    area: int | None = None
    item: int | None = None
    member: str | None = None
    severity: Severity | None = None
    activity_status: ActivityStatus | None = None
    alert_status: AlertStatus | None = None
    open_only: bool = False
    channel: Channel | None = None
    indicator: str | None = None

    def items_in_scope(self) -> list[int] | None:
        """The strategy items the item and area filters leave (None: no such filter)."""
        if self.item is not None:
            if self.area is not None and STRATEGY.item(self.item).area_number != self.area:
                return []
            return [self.item]
        if self.area is not None:
            return [item.number for item in STRATEGY.area(self.area).items]
        return None

    def with_year_default(self, year: int) -> ReportFilters:
        return self if self.year is not None else replace(self, year=year)


def _whole_number(value: object) -> object:
    """Digits only: '2025.0', '1e3' or ' 12' are refused, not read as numbers."""
    if isinstance(value, str) and not re.fullmatch(r"[0-9]{1,9}", value):
        raise ValueError("must be a whole number written with the digits 0-9")
    return value


WholeNumber = BeforeValidator(_whole_number)


def _day(value: str | None, field: str) -> date | None:
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise field_error(f"query.{field}", "not a calendar date (YYYY-MM-DD)") from None
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise field_error(f"query.{field}", f"must be within the years {FIRST_YEAR}-{LAST_YEAR}")
    return day


DateFrom = Annotated[
    str | None,
    Query(
        pattern=_DAY_PATTERN,
        description="First day included (YYYY-MM-DD)",
        examples=["2025-01-01"],
    ),
]
DateTo = Annotated[
    str | None,
    Query(
        pattern=_DAY_PATTERN, description="Last day included (YYYY-MM-DD)", examples=["2025-12-31"]
    ),
]
Year = Annotated[
    int | None,
    Query(ge=FIRST_YEAR, le=LAST_YEAR, description="Calendar year", examples=[2025]),
    WholeNumber,
]
Area = Annotated[
    int | None,
    Query(ge=1, le=MAX_AREA, description="Strategy area number", examples=[4]),
    WholeNumber,
]
Item = Annotated[
    int | None,
    Query(ge=1, le=MAX_ITEM, description="Strategy item number", examples=[12]),
    WholeNumber,
]
Member = Annotated[
    str | None,
    Query(pattern=_MEMBER_PATTERN, description="Member id, any letter case", examples=["TH"]),
]
SeverityQuery = Annotated[Severity | None, Query(description="CAP severity", examples=["Extreme"])]


def date_range(date_from: DateFrom = None, date_to: DateTo = None) -> ReportFilters:
    start, end = _day(date_from, "date_from"), _day(date_to, "date_to")
    if start is not None and end is not None and end < start:
        raise field_error("query.date_to", "must not be before date_from")
    return ReportFilters(date_from=start, date_to=end)


async def coverage_filters(
    year: Year = None,
    area: Area = None,
    item: Item = None,
    member: Member = None,
    status: Annotated[ActivityStatus | None, Query(examples=["ongoing"])] = None,
) -> ReportFilters:
    return ReportFilters(
        year=year,
        area=area,
        item=item,
        member=member.upper() if member else None,
        activity_status=status,
    )


async def trend_filters(
    date_from: DateFrom = None, date_to: DateTo = None, area: Area = None
) -> ReportFilters:
    return replace(date_range(date_from, date_to), area=area)


async def indicator_filters(
    year: Year = None,
    area: Area = None,
    item: Item = None,
    indicator: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="Indicator name",
            examples=["officers trained"],
        ),
    ] = None,
) -> ReportFilters:
    name = " ".join(indicator.split()).lower() if indicator else None
    if indicator is not None and not name:
        raise field_error("query.indicator", "must not be blank")
    return ReportFilters(year=year, area=area, item=item, indicator=name)


async def alert_filters(
    date_from: DateFrom = None,
    date_to: DateTo = None,
    severity: SeverityQuery = None,
    member: Member = None,
    status: Annotated[AlertStatus | None, Query(examples=["acknowledged"])] = None,
    open_only: Annotated[
        bool, Query(alias="open", description="Only alerts not yet resolved or withdrawn")
    ] = False,
) -> ReportFilters:
    return replace(
        date_range(date_from, date_to),
        severity=severity,
        member=member.upper() if member else None,
        alert_status=status,
        open_only=open_only,
    )


async def response_time_filters(
    date_from: DateFrom = None, date_to: DateTo = None, severity: SeverityQuery = None
) -> ReportFilters:
    return replace(date_range(date_from, date_to), severity=severity)


async def delivery_filters(
    date_from: DateFrom = None,
    date_to: DateTo = None,
    severity: SeverityQuery = None,
    channel: Annotated[Channel | None, Query(examples=["email"])] = None,
    member: Member = None,
) -> ReportFilters:
    return replace(
        date_range(date_from, date_to),
        severity=severity,
        channel=channel,
        member=member.upper() if member else None,
    )


async def follow_up_filters(
    date_from: DateFrom = None,
    date_to: DateTo = None,
    item: Item = None,
    member: Member = None,
    severity: SeverityQuery = None,
) -> ReportFilters:
    return replace(
        date_range(date_from, date_to),
        item=item,
        member=member.upper() if member else None,
        severity=severity,
    )
