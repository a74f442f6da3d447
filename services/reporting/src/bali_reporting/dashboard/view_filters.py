"""The dashboard's filters: one set in the query string, so a view is a URL that can be shared.

They are parsed by the same annotated query types as the reports (a bad value is the
same 422 naming `query.<field>`), then narrowed to what each report takes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Annotated
from urllib.parse import urlencode

from bali_common.events.alerts import Severity
from fastapi import Query

from bali_reporting import filters as f
from bali_reporting.deps import Now
from bali_reporting.filters import ReportFilters


@dataclass(frozen=True)
class ViewFilters:
    year: int
    area: int | None = None
    member: str | None = None
    severity: Severity | None = None
    date_from: date | None = None
    date_to: date | None = None
    #: The board lists only alerts not yet resolved or withdrawn.
    open_only: bool = False

    def query(self, **changes: object) -> str:
        """This view's query string, with `changes` applied (None drops a filter)."""
        values: dict[str, object] = {
            "year": self.year,
            "area": self.area,
            "member": self.member,
            "severity": self.severity.value if self.severity else None,
            "date_from": self.date_from.isoformat() if self.date_from else None,
            "date_to": self.date_to.isoformat() if self.date_to else None,
            "open": "true" if self.open_only else None,
        }
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v is not None})

    @property
    def first_day(self) -> date:
        return self.date_from or date(self.year, 1, 1)

    @property
    def last_day(self) -> date:
        return self.date_to or date(self.year, 12, 31)

    def coverage(self) -> ReportFilters:
        return ReportFilters(year=self.year, area=self.area, member=self.member)

    def trends(self) -> ReportFilters:
        return ReportFilters(date_from=self.first_day, date_to=self.last_day, area=self.area)

    def indicators(self) -> ReportFilters:
        return ReportFilters(year=self.year, area=self.area)

    def alerts(self) -> ReportFilters:
        """The board: the time range when one is set, else every alert (open ones matter
        whenever they were raised)."""
        return ReportFilters(
            date_from=self.date_from,
            date_to=self.date_to,
            member=self.member,
            severity=self.severity,
            open_only=self.open_only,
        )

    def response_times(self) -> ReportFilters:
        return ReportFilters(
            date_from=self.first_day, date_to=self.last_day, severity=self.severity
        )

    def deliveries(self) -> ReportFilters:
        return replace(self.response_times(), member=self.member)


async def view_filters(
    now: Now,
    year: f.Year = None,
    area: f.Area = None,
    member: f.Member = None,
    severity: f.SeverityQuery = None,
    date_from: f.DateFrom = None,
    date_to: f.DateTo = None,
    open_only: Annotated[
        bool, Query(alias="open", description="Only alerts not yet resolved or withdrawn")
    ] = False,
) -> ViewFilters:
    span = f.date_range(date_from, date_to)
    return ViewFilters(
        year=year or now.year,
        area=area,
        member=member.upper() if member else None,
        severity=severity,
        date_from=span.date_from,
        date_to=span.date_to,
        open_only=open_only,
    )
