"""Pipeline health: events received here by type, and each service's lag, backlog and dead letters.

The event tally (formerly its own consumer group, `reporting.pipeline`) is folded in:
it is one more projection of the `reporting.projections` group. The rest is read on
demand from each service's Prometheus `/metrics` with a short timeout; a service that
does not answer is reported unreachable, never an error of this report.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from bali_common.db import as_utc, table_of, utc_column
from bali_common.events.registry import EventPayload
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import case
from sqlmodel import Field as TableField
from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_reporting.projections.base import (
    Applied,
    MergedRowsFold,
    Projection,
    execute_many,
    insert_for,
)

_MAX_METRICS_BYTES = 4 * 1_048_576


class EventTally(SQLModel, table=True):
    """How many events of each type the pipeline delivered here (each once, by the inbox)."""

    __tablename__ = "event_tallies"

    event_type: str = TableField(primary_key=True, max_length=100)
    stream: str = TableField(max_length=50)
    count: int = 0
    last_event_at: datetime = TableField(sa_column=utc_column())


def count_into(
    counts: dict[str, dict[str, Any]], batch: Sequence[Applied]
) -> dict[str, dict[str, Any]]:
    """Events per type and the latest one's time (`counts`: those counted so far; a type's
    stream is the first one seen, as the table keeps it)."""
    for event, payload in batch:
        row = counts.setdefault(
            event.type,
            {
                "event_type": event.type,
                "stream": payload.stream.value,
                "count": 0,
                "last_event_at": None,
            },
        )
        row["count"] += 1
        moment = as_utc(event.time)
        row["last_event_at"] = max(row["last_event_at"] or moment, moment)
    return counts


async def apply(session: AsyncSession, batch: Sequence[Applied]) -> None:
    counts = count_into({}, batch)
    if not counts:
        return
    table = table_of(EventTally)
    statement = insert_for(session, table)
    x = statement.excluded  # type: ignore[attr-defined]
    statement = statement.on_conflict_do_update(  # type: ignore[attr-defined]
        index_elements=["event_type"],
        set_={
            "count": table.c.count + x.count,
            "last_event_at": case(
                (x.last_event_at > table.c.last_event_at, x.last_event_at),
                else_=table.c.last_event_at,
            ),
        },
    )
    await execute_many(session, statement, [counts[key] for key in sorted(counts)])


PROJECTION = Projection(
    name="pipeline",
    models=(EventTally,),
    takes=(EventPayload,),
    apply=apply,
    fold=lambda: MergedRowsFold(count_into, table_of(EventTally)),
)


class EventTallyPublic(BaseModel):
    event_type: str
    stream: str
    count: int
    last_event_at: datetime


class EventTalliesPublic(BaseModel):
    items: list[EventTallyPublic]
    total: int


async def event_tallies(session: AsyncSession) -> list[EventTallyPublic]:
    found = await session.exec(select(EventTally).order_by(col(EventTally.event_type)))
    return [
        EventTallyPublic(
            event_type=row.event_type,
            stream=row.stream,
            count=row.count,
            last_event_at=as_utc(row.last_event_at),
        )
        for row in found
    ]


# --- scraping -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScrapeTarget:
    service: str
    url: str  # the service's base URL; its metrics are at /metrics


class ConsumerGroupHealth(BaseModel):
    group: str
    lag: int = Field(description="Records behind the high-water marks, all partitions")
    partitions_behind: int
    applied: int = Field(description="Events applied since the service started")
    duplicates: int
    retried: int
    dead_lettered: int


class ServiceHealth(BaseModel):
    service: str
    metrics_url: str
    reachable: bool
    error: str | None = None
    outbox_backlog: int | None = None
    outbox_publish_failures: int | None = None
    consumer_groups: list[ConsumerGroupHealth] = Field(default_factory=list)


class PipelineHealth(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "checked_at": "2025-11-28T03:10:00Z",
                    "services": [
                        {
                            "service": "notifications",
                            "metrics_url": "http://127.0.0.1:8003/metrics",
                            "reachable": True,
                            "error": None,
                            "outbox_backlog": 0,
                            "outbox_publish_failures": 0,
                            "consumer_groups": [
                                {
                                    "group": "notifications.planning",
                                    "lag": 0,
                                    "partitions_behind": 0,
                                    "applied": 120,
                                    "duplicates": 1,
                                    "retried": 0,
                                    "dead_lettered": 0,
                                }
                            ],
                        },
                        {
                            "service": "consultation",
                            "metrics_url": "http://127.0.0.1:8002/metrics",
                            "reachable": False,
                            "error": "ConnectError: connection refused",
                        },
                    ],
                    "events_received": [],
                    "events_received_total": 0,
                }
            ]
        }
    )

    checked_at: datetime
    services: list[ServiceHealth]
    events_received: list[EventTallyPublic] = Field(description="Events reporting applied, by type")
    events_received_total: int


class MetricsScraper:
    """Reads every service's /metrics concurrently; this service's own straight from memory."""

    def __init__(
        self,
        targets: Sequence[ScrapeTarget],
        *,
        timeout_s: float,
        own_service: str,
        own_metrics: Callable[[], bytes],
    ) -> None:
        self._targets = list(targets)
        self._timeout = timeout_s
        self._own_service = own_service
        self._own_metrics = own_metrics
        # Built once: loading the CA bundle for every report would cost more than the scrape.
        self._tls = ssl.create_default_context()

    async def scrape(self) -> list[ServiceHealth]:
        async with httpx.AsyncClient(
            timeout=self._timeout, follow_redirects=False, verify=self._tls
        ) as client:
            remote = await asyncio.gather(*(self._scrape(client, t) for t in self._targets))
        own = _health(self._own_service, "(this service)", self._own_metrics().decode())
        return sorted([*remote, own], key=lambda s: s.service)

    async def _scrape(self, client: httpx.AsyncClient, target: ScrapeTarget) -> ServiceHealth:
        url = f"{target.url.rstrip('/')}/metrics"
        try:
            response = await client.get(url)
            response.raise_for_status()
            if len(response.content) > _MAX_METRICS_BYTES:
                raise ValueError("metrics larger than 4 MiB")
            return _health(target.service, url, response.text)
        except (httpx.HTTPError, ValueError) as error:
            return ServiceHealth(
                service=target.service,
                metrics_url=url,
                reachable=False,
                error=f"{type(error).__name__}: {error}"[:300],
            )


def _health(service: str, url: str, text: str) -> ServiceHealth:
    """The figures of one exposition (raises ValueError if it is not Prometheus text)."""
    backlog: float | None = None
    failures: float | None = None
    lag: dict[str, int] = defaultdict(int)
    behind: dict[str, int] = defaultdict(int)
    counters: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            group = sample.labels.get("group")
            if sample.name == "bali_outbox_backlog":
                backlog = sample.value
            elif sample.name == "bali_outbox_publish_failures_total":
                failures = sample.value
            elif sample.name == "bali_consumer_lag" and group:
                lag[group] += int(sample.value)
                behind[group] += 1 if sample.value > 0 else 0
            elif group and sample.name in _GROUP_COUNTERS:
                counters[group][_GROUP_COUNTERS[sample.name]] += sample.value
    groups = sorted({*lag, *counters})
    return ServiceHealth(
        service=service,
        metrics_url=url,
        reachable=True,
        outbox_backlog=int(backlog) if backlog is not None else None,
        outbox_publish_failures=int(failures) if failures is not None else None,
        consumer_groups=[
            ConsumerGroupHealth(
                group=group,
                lag=lag.get(group, 0),
                partitions_behind=behind.get(group, 0),
                **{name: int(counters[group].get(name, 0)) for name in _GROUP_COUNTERS.values()},
            )
            for group in groups
        ],
    )


_GROUP_COUNTERS = {
    "bali_events_applied_total": "applied",
    "bali_events_duplicate_total": "duplicates",
    "bali_events_retried_total": "retried",
    "bali_events_dead_lettered_total": "dead_lettered",
}


async def pipeline_health(
    session: AsyncSession, scraper: MetricsScraper, *, now: datetime
) -> PipelineHealth:
    services, tallies = await asyncio.gather(scraper.scrape(), event_tallies(session))
    return PipelineHealth(
        checked_at=now,
        services=services,
        events_received=tallies,
        events_received_total=sum(t.count for t in tallies),
    )


COLUMNS = (
    "service",
    "reachable",
    "error",
    "outbox_backlog",
    "outbox_publish_failures",
    "group",
    "lag",
    "partitions_behind",
    "applied",
    "duplicates",
    "retried",
    "dead_lettered",
)


def rows(report: PipelineHealth) -> Iterator[list[Any]]:
    """One row per consumer group (a service without groups gets one row)."""
    for s in report.services:
        head = [s.service, s.reachable, s.error, s.outbox_backlog, s.outbox_publish_failures]
        if not s.consumer_groups:
            yield [*head, None, None, None, None, None, None, None]
        for g in s.consumer_groups:
            yield [
                *head,
                g.group,
                g.lag,
                g.partitions_behind,
                g.applied,
                g.duplicates,
                g.retried,
                g.dead_lettered,
            ]
