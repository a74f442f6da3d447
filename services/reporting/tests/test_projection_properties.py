"""The projections are exact under redelivery and reordering (property tests).

Generated histories of members, activities, alerts and deliveries are applied as the
broker may deliver them: each aggregate's events in order but interleaved across
aggregates and topics, with redeliveries; and also fully shuffled (a relay that
published two rows of one aggregate out of order). Applied one event per transaction
through the consumer group's handlers, in batches as a rebuild's catch-up does, or
folded and written once as a rebuild's first pass does, every variant gives the same
tables, and those equal a straightforward computation from the events.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import pytest
from bali_common.db import (
    create_engine,
    create_session_factory,
    create_tables,
    table_of,
    transaction,
)
from bali_common.events import CloudEvent
from bali_common.events.activities import (
    ActivityEvent,
    ActivityStatus,
    ActivitySummary,
    ActivityType,
    ParticipantRole,
)
from bali_common.events.alerts import AlertEvent, AlertStatus, Sensitivity, Severity
from bali_common.events.members import MemberSnapshot
from bali_common.events.notifications import DeliveryEvent
from bali_common.messaging.inbox import InboxEntry, applied_among
from bali_devkit.testing.plugin import DatabaseFactory
from bali_reporting.consumers import GROUP, handlers
from bali_reporting.filters import ReportFilters
from bali_reporting.projections import PROJECTION_MODELS, PROJECTIONS
from bali_reporting.projections.alerts import AlertBoardEntry
from bali_reporting.projections.coverage import COVERING, coverage_report, involvement
from bali_reporting.projections.dating import start_month, start_year, years_spanned
from bali_reporting.projections.deliveries import DeliveryRecord, facts, merged
from bali_reporting.projections.follow_up import FollowUpActivity
from bali_reporting.projections.indicators import IndicatorTally, indicator_name
from bali_reporting.projections.members import DirectoryMember
from bali_reporting.projections.pipeline import EventTally
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reporting_testkit import (
    NOW,
    activity,
    activity_event,
    alert,
    alert_event,
    delivery_event,
    member_event,
    output,
    table_dump,
)
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

MEMBERS = ["AU", "ID", "TH", "IOM"]
ITEMS = [3, 11, 12, 13, 25]
GROUP_CHAIN = handlers.consumer_group(GROUP)

# --- generated histories ---------------------------------------------------------------------


@st.composite
def activity_history(draw: st.DrawFn, activity_id: str) -> list[CloudEvent]:
    events: list[CloudEvent] = []
    versions = draw(st.integers(1, 4))
    deleted = False
    for version in range(1, versions + 1):
        lead = draw(st.sampled_from(MEMBERS))
        others = draw(
            st.lists(st.sampled_from([m for m in MEMBERS if m != lead]), unique=True, max_size=2)
        )
        start = draw(st.none() | st.dates(date(2024, 11, 1), date(2026, 2, 1)))
        length = draw(st.integers(0, 500))
        outputs = draw(
            st.lists(
                st.builds(
                    output,
                    st.sampled_from(["Officers trained", "officers  trained", "People reached"]),
                    st.sampled_from([1, 40, 12.25, 0.5]),
                    female=st.none() | st.sampled_from([0.25, 3]),
                    ages=st.lists(
                        st.tuples(st.sampled_from(["18-24", "60+"]), st.just(0.125)), max_size=1
                    ),
                ),
                max_size=2,
            )
        )
        kind = (
            "created"
            if version == 1
            else draw(st.sampled_from(["updated", "status_changed", "deleted"]))
        )
        if kind == "deleted":
            kind, deleted = ("restored", False) if deleted else ("deleted", True)
        summary = activity(
            activity_id,
            version=version,
            items=draw(st.lists(st.sampled_from(ITEMS), unique=True, min_size=1, max_size=3)),
            status=draw(st.sampled_from(list(ActivityStatus))),
            kind=draw(st.sampled_from([ActivityType.workshop, ActivityType.training])),
            lead=lead,
            participants=[(m, draw(st.sampled_from(list(ParticipantRole)[1:]))) for m in others],
            start=start,
            end=start + timedelta(days=length) if start else None,
            outputs=outputs,
            related_alert_id=draw(st.none() | st.sampled_from(["al-1", "al-2"])),
            deleted=deleted,
        )
        events.append(activity_event(summary, kind))
        if kind in ("updated", "status_changed") and draw(st.booleans()):
            # One change publishes both events with the same snapshot and version.
            events.append(
                activity_event(summary, "updated" if kind == "status_changed" else "status_changed")
            )
    return events


@st.composite
def alert_history(draw: st.DrawFn, alert_id: str) -> list[CloudEvent]:
    steps = [
        AlertStatus.raised,
        AlertStatus.acknowledged,
        AlertStatus.consultation_convened,
        AlertStatus.resolved,
    ]
    last = draw(st.integers(1, 4))
    raised_at = NOW - timedelta(days=draw(st.integers(0, 200)))
    severity = draw(st.sampled_from([Severity.extreme, Severity.severe]))
    sensitivity = draw(st.sampled_from(list(Sensitivity)))
    affected = draw(st.lists(st.sampled_from(MEMBERS), unique=True, max_size=2))
    events = []
    for version in range(1, last + 1):
        status = steps[version - 1]
        if version == last and draw(st.booleans()) and status is not AlertStatus.resolved:
            status = AlertStatus.withdrawn
        summary = alert(
            alert_id,
            version=version,
            status=status,
            severity=severity,
            sensitivity=sensitivity,
            affected=affected,
            raised_at=raised_at,
            acknowledged_after=timedelta(minutes=7) if version >= 2 else None,
            convened_after=timedelta(hours=2) if version >= 3 else None,
            resolved_after=timedelta(days=1) if status is AlertStatus.resolved else None,
        )
        events.append(alert_event(summary, at=raised_at + timedelta(minutes=version)))
    return events


@st.composite
def delivery_history(draw: st.DrawFn, delivery_id: str) -> list[CloudEvent]:
    alert_id = draw(st.none() | st.sampled_from(["al-1", "al-2", "al-unknown"]))
    events = []
    for attempt in range(1, draw(st.integers(1, 3)) + 1):
        at = NOW + timedelta(seconds=attempt * 10)
        events.append(
            delivery_event(delivery_id, "sent", attempt=attempt, at=at, alert_id=alert_id)
        )
        outcome = draw(st.sampled_from(["delivered", "failed", "exhausted"]))
        events.append(
            delivery_event(
                delivery_id,
                outcome,
                attempt=attempt,
                at=at + timedelta(seconds=1),
                alert_id=alert_id,
                warning=draw(st.booleans()),
                error=draw(st.sampled_from(["503 from receiver", "timeout"])),
            )
        )
    return events


@st.composite
def histories(draw: st.DrawFn) -> list[list[CloudEvent]]:
    """Per aggregate, its events in publication order."""
    streams: list[list[CloudEvent]] = []
    for member_id in draw(st.lists(st.sampled_from(MEMBERS), unique=True, max_size=3)):
        versions = draw(st.integers(1, 2))
        streams.append(
            [
                member_event(member_id, version=v, co_chair=draw(st.booleans()))
                for v in range(1, versions + 1)
            ]
        )
    streams += [draw(activity_history(f"a-{n}")) for n in range(draw(st.integers(1, 4)))]
    streams += [draw(alert_history(f"al-{n}")) for n in range(1, draw(st.integers(1, 2)) + 1)]
    streams += [draw(delivery_history(f"d-{n}")) for n in range(draw(st.integers(0, 2)))]
    return streams


def as_delivered(
    streams: list[list[CloudEvent]], rng: random.Random, *, ordered: bool
) -> list[CloudEvent]:
    """Interleaved across aggregates, each aggregate in order unless `ordered` is False,
    and with some events delivered again later."""
    queues = [list(s) for s in streams if s]
    sequence: list[CloudEvent] = []
    while queues:
        queue = rng.choice(queues)
        sequence.append(queue.pop(0))
        if not queue:
            queues.remove(queue)
    for event in rng.sample(sequence, k=len(sequence) // 3):
        sequence.insert(rng.randrange(sequence.index(event) + 1, len(sequence) + 1), event)
    if not ordered:
        rng.shuffle(sequence)
    return sequence


# --- two ways of applying ----------------------------------------------------------------------


async def one_by_one(sessions: Any, events: Sequence[CloudEvent]) -> None:
    """As the consumer runner does for a single event: handlers in order, inbox row."""
    for event in events:
        async with transaction(sessions) as session:
            if await applied_among(session, group=GROUP, event_ids=[str(event.id)]):
                continue
            payload = event.payload()
            for index in GROUP_CHAIN.route_of(event.type, event.version):
                await GROUP_CHAIN.registrations[index].apply(session, [(event, payload)])
            session.add(
                InboxEntry(
                    consumer_group=GROUP,
                    event_id=str(event.id),
                    event_type=event.type,
                    topic="t",
                    partition=0,
                    offset=0,
                )
            )


async def in_batches(sessions: Any, events: Sequence[CloudEvent], rng: random.Random) -> None:
    """As a rebuild does: each projection applies a whole batch at once."""
    position = 0
    while position < len(events):
        size = rng.randint(1, 8)
        batch, position = events[position : position + size], position + size
        async with transaction(sessions) as session:
            seen = set(
                await applied_among(session, group=GROUP, event_ids=[str(e.id) for e in batch])
            )
            fresh = []
            for event in batch:
                if str(event.id) not in seen:
                    seen.add(str(event.id))
                    fresh.append((event, event.payload()))
            for projection in PROJECTIONS:
                mine = [item for item in fresh if projection.accepts(item[1])]
                if mine:
                    await projection.apply(session, mine)
            for event, _ in fresh:
                session.add(
                    InboxEntry(
                        consumer_group=GROUP,
                        event_id=str(event.id),
                        event_type=event.type,
                        topic="t",
                        partition=0,
                        offset=0,
                    )
                )


async def folded(sessions: Any, events: Sequence[CloudEvent], rng: random.Random) -> None:
    """As a rebuild's first pass does into empty tables: each projection's fold takes the
    batches, then writes every row once."""
    folds = [(projection, projection.fold()) for projection in PROJECTIONS]
    seen: set[str] = set()
    position = 0
    while position < len(events):
        size = rng.randint(1, 8)
        batch, position = events[position : position + size], position + size
        fresh = []
        for event in batch:
            if str(event.id) not in seen:
                seen.add(str(event.id))
                fresh.append((event, event.payload()))
        for projection, fold in folds:
            mine = [item for item in fresh if projection.accepts(item[1])]
            if mine:
                fold.add(mine)
    async with transaction(sessions) as session:
        for _, fold in folds:
            await fold.write(session)
        for event_id in sorted(seen):
            session.add(
                InboxEntry(
                    consumer_group=GROUP,
                    event_id=event_id,
                    event_type="-",
                    topic="t",
                    partition=0,
                    offset=0,
                )
            )


# --- the straightforward computation -----------------------------------------------------------


def newest(payloads: list[Any], version: Any) -> dict[str, Any]:
    """Per aggregate, the payload with the highest version."""
    found: dict[str, Any] = {}
    for payload in payloads:
        aggregate = version(payload)
        if aggregate[0] not in found or found[aggregate[0]][0] < aggregate[1]:
            found[aggregate[0]] = (aggregate[1], payload)
    return {k: v[1] for k, v in found.items()}


def reference(events: Sequence[CloudEvent]) -> dict[str, list[tuple[Any, ...]]]:
    distinct = list({e.id: e for e in events}.values())
    payloads = [e.payload() for e in distinct]
    activities: dict[str, ActivitySummary] = {
        k: p.activity
        for k, p in newest(
            [p for p in payloads if isinstance(p, ActivityEvent)],
            lambda p: (p.activity.activity_id, p.activity.version),
        ).items()
    }
    live = [a for a in activities.values() if not a.deleted]
    coverage: Counter[tuple[Any, ...]] = Counter()
    trends: Counter[tuple[Any, ...]] = Counter()
    indicators: Counter[tuple[Any, ...]] = Counter()
    for a in live:
        for year in years_spanned(a):
            for item in set(a.item_numbers):
                coverage[(year, item, "*", "any", a.status.value)] += 1
                for member_id, role in involvement(a):
                    coverage[(year, item, member_id, role, a.status.value)] += 1
        for area in {0, *a.area_numbers}:
            trends[(start_month(a), area, a.status.value, a.type.value)] += 1
        for o in a.outputs:
            for item in {0, *a.item_numbers}:
                key = (start_year(a), indicator_name(o.indicator), o.unit or "", item)
                indicators[(*key, "n")] += 1
                indicators[(*key, "value")] += round(o.value * 1000)
                indicators[(*key, "female")] += (
                    round((o.by_sex.female or 0) * 1000) if o.by_sex else 0
                )
    alerts = newest(
        [p for p in payloads if isinstance(p, AlertEvent)],
        lambda p: (p.alert.alert_id, p.alert.version),
    )
    members = newest(
        [p for p in payloads if isinstance(p, MemberSnapshot)],
        lambda p: (p.member_id, p.version),
    )
    deliveries: dict[str, dict[str, Any]] = {}
    for p in payloads:
        if isinstance(p, DeliveryEvent):
            row = facts(p)
            deliveries[p.delivery_id] = (
                merged(deliveries[p.delivery_id], row) if p.delivery_id in deliveries else row
            )
    return {
        "coverage_tallies": sorted((*k, n) for k, n in coverage.items()),
        "trend_tallies": sorted((*k, n) for k, n in trends.items()),
        "indicators": sorted((k, v) for k, v in indicators.items() if v),
        "alert_board": sorted(
            (a, p.alert.version, p.alert.status.value, p.event_type.removeprefix("alert."))
            for a, p in alerts.items()
        ),
        "reporting_members": sorted((m, p.version, p.is_co_chair) for m, p in members.items()),
        "follow_up_activities": sorted(
            (a.activity_id, a.version, a.related_alert_id, a.deleted) for a in activities.values()
        ),
        "delivery_health": sorted(
            (
                d,
                r["attempts"],
                r["delivered_at"] is not None,
                r["exhausted_at"] is not None,
                r["operator_warning"],
                r["last_error"],
            )
            for d, r in deliveries.items()
        ),
        "event_tallies": sorted(Counter(e.type for e in distinct).items()),
        "uncovered_2025": sorted(
            item
            for item in range(1, 26)
            if not any(
                2025 in years_spanned(a) and item in a.item_numbers and a.status in COVERING
                for a in live
            )
        ),
    }


def projected(dump: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    """The same facts read from the tables."""

    def rows(model: Any, *names: str) -> list[tuple[Any, ...]]:
        keys = list(table_of(model).c.keys())
        return sorted(tuple(row[keys.index(n)] for n in names) for row in dump[model.__tablename__])

    indicators = []
    for *key, n, value, female in rows(
        IndicatorTally, "year", "indicator", "unit", "item_number", "n", "value", "female"
    ):
        indicators += [((*key, "n"), n), ((*key, "value"), value), ((*key, "female"), female)]
    deliveries = [
        (d, attempts, delivered is not None, exhausted is not None, bool(warned), error)
        for d, attempts, delivered, exhausted, warned, error in rows(
            DeliveryRecord,
            "delivery_id",
            "attempts",
            "delivered_at",
            "exhausted_at",
            "operator_warning",
            "last_error",
        )
    ]
    return {
        "coverage_tallies": sorted(dump["coverage_tallies"]),
        "trend_tallies": sorted(dump["trend_tallies"]),
        "indicators": sorted(i for i in indicators if i[1]),
        "alert_board": rows(AlertBoardEntry, "alert_id", "version", "status", "last_step"),
        "reporting_members": [
            (m, v, bool(c))
            for m, v, c in rows(DirectoryMember, "member_id", "version", "is_co_chair")
        ],
        "follow_up_activities": [
            (a, v, r, bool(d))
            for a, v, r, d in rows(
                FollowUpActivity, "activity_id", "version", "alert_id", "deleted"
            )
        ],
        "delivery_health": sorted(deliveries),
        "event_tallies": rows(EventTally, "event_type", "count"),
    }


# --- the properties ----------------------------------------------------------------------------


async def fresh(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        for model in (*PROJECTION_MODELS, InboxEntry):
            await connection.execute(delete(table_of(model)))


@pytest.fixture
async def engine(databases: DatabaseFactory) -> Any:
    engine = create_engine(await databases.create("reporting"))
    await create_tables(engine, [*PROJECTION_MODELS, InboxEntry])
    yield engine
    await engine.dispose()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(streams=histories(), seed=st.integers(0, 2**32 - 1))
async def test_any_delivery_order_and_redelivery_gives_the_same_tables(
    engine: AsyncEngine, streams: list[list[CloudEvent]], seed: int
) -> None:
    rng = random.Random(seed)
    sessions = create_session_factory(engine)
    published = [event for stream in streams for event in stream]
    dumps = []
    for apply, sequence in (
        ("one_by_one", published),
        ("one_by_one", as_delivered(streams, rng, ordered=True)),
        ("in_batches", as_delivered(streams, rng, ordered=True)),
        ("one_by_one", as_delivered(streams, rng, ordered=False)),
        ("in_batches", as_delivered(streams, rng, ordered=False)),
        ("folded", as_delivered(streams, rng, ordered=True)),
        ("folded", as_delivered(streams, rng, ordered=False)),
    ):
        await fresh(engine)
        if apply == "one_by_one":
            await one_by_one(sessions, sequence)
        elif apply == "in_batches":
            await in_batches(sessions, sequence, rng)
        else:
            await folded(sessions, sequence, rng)
        dumps.append(await table_dump(engine))
    for variant, dump in enumerate(dumps[1:], start=1):
        differing = {
            name: (rows, dump[name]) for name, rows in dumps[0].items() if dump[name] != rows
        }
        assert not differing, f"variant {variant} differs: {differing}"

    expected = reference(published)
    async with sessions() as session:
        report = await coverage_report(session, ReportFilters(year=2025))
    assert projected(dumps[0]) | {"uncovered_2025": report.uncovered_items} == expected
