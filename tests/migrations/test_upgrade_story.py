"""Rows written by release 0.1.0 survive the upgrade and read back through today's services.

Each service's database starts either at revision 0001 or as release 0.1.0's own create_all
left it (no version: adopted at 0001), receives the rows the release's services wrote through
their APIs (release_0_1_0/*.json, captured from commit cfebaee), is upgraded to head, and
then serves those rows through today's app over HTTP; its unsent outbox rows are published.
The reads need no consumer, so the apps do not wait for their groups to join.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from bali_common.auth import Role
from bali_common.events.topics import STREAM_TOPICS, Stream
from bali_common.migrations import downgrade, upgrade
from bali_devkit.testing.plugin import (
    DatabaseFactory,
    SettingsFactory,
    TokenBook,
    read_topic,
    running,
)
from migrations_support import (
    BACKENDS,
    SETTINGS,
    create_app,
    create_release_schema,
    differences,
    empty_database,
    history,
    load_rows,
    on,
    release_rows,
)
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

STARTS = ["at-revision-0001", "created-by-release-0.1.0"]


async def upgraded(
    service: str,
    start: str,
    backend: str,
    databases: DatabaseFactory,
    directory: Path,
    rows: dict[str, list[dict[str, Any]]],
) -> str:
    """The service's database with the release's rows, upgraded to head."""
    url = await empty_database(backend, databases, directory, service)
    if start == "at-revision-0001":
        await upgrade(url, history(service), "0001", quiet=True)
    else:
        await on(url, lambda connection: create_release_schema(connection, service))
    await on(url, lambda connection: load_rows(connection, rows))
    outcome = await upgrade(url, history(service), quiet=True)
    assert outcome.adopted == (start == "created-by-release-0.1.0")
    assert await differences(url, service) == [], "upgraded is not what a new database is"
    return url


def refused(connection: Connection, statement: str) -> str:
    with pytest.raises(DBAPIError) as error:
        connection.execute(text(statement))
    return str(error.value)


async def assert_audit_trail_append_only(url: str, rows: int) -> None:
    """The triggers survived the upgrade: the release's audit rows cannot change or go."""

    def check(connection: Connection) -> None:
        count = connection.execute(text("SELECT count(*) FROM audit_records")).scalar_one()
        assert count == rows
        assert "append-only" in refused(connection, "UPDATE audit_records SET outcome = 'x'")
        connection.rollback()
        assert "append-only" in refused(connection, "DELETE FROM audit_records")
        connection.rollback()

    await on(url, check)


def event_ids(rows: dict[str, list[dict[str, Any]]], stream: Stream) -> set[str]:
    topic = STREAM_TOPICS[stream].name
    return {row["event_id"] for row in rows["outbox_messages"] if row["topic"] == topic}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("start", STARTS)
async def test_activities_members_and_their_events_survive(
    start: str,
    backend: str,
    databases: DatabaseFactory,
    make_settings: SettingsFactory,
    tmp_path: Path,
) -> None:
    rows = release_rows("activities")
    url = await upgraded("activities", start, backend, databases, tmp_path, rows)
    await assert_audit_trail_append_only(url, len(rows["audit_records"]))
    settings = await make_settings(SETTINGS["activities"], database_url=url)
    tokens = TokenBook(settings)
    (activity,) = rows["activities"]
    async with running(create_app("activities", settings)) as client:
        member = await client.get("/v1/members/MY", headers=tokens("MY"))
        assert member.status_code == 200, member.text
        assert member.json()["name"] == "Malaysia"
        assert [f["email"] for f in member.json()["focal_points"]] == [
            row["email"] for row in rows["focal_points"]
        ]
        found = await client.get(f"/v1/activities/{activity['id']}", headers=tokens("MY"))
        assert found.status_code == 200, found.text
        body = found.json()
        for field in ("title", "items", "type", "status", "countries", "tags", "outputs"):
            assert body[field] == activity[field], field
        assert body["lead_member"] == "MY"
        listed = await client.get("/v1/activities?item=12", headers=tokens("TH"))
        assert [a["id"] for a in listed.json()["items"]] == [activity["id"]]
        history_page = await client.get(
            f"/v1/activities/{activity['id']}/history", headers=tokens("MY")
        )
        assert [v["version"] for v in history_page.json()["items"]] == [1]
        # The release's events never reached a broker: today's relay publishes them.
        for stream in (Stream.members, Stream.activities):
            expected = event_ids(rows, stream)
            published = await read_topic(settings, STREAM_TOPICS[stream], expected=len(expected))
            assert {str(event.id) for event in published} == expected


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("start", STARTS)
async def test_consultation_alert_and_its_timeline_survive(
    start: str,
    backend: str,
    databases: DatabaseFactory,
    make_settings: SettingsFactory,
    tmp_path: Path,
) -> None:
    rows = release_rows("consultation")
    url = await upgraded("consultation", start, backend, databases, tmp_path, rows)
    await assert_audit_trail_append_only(url, len(rows["audit_records"]))
    settings = await make_settings(SETTINGS["consultation"], database_url=url)
    tokens = TokenBook(settings)
    (alert,) = rows["consultation_alerts"]
    async with running(create_app("consultation", settings), wait_for_messaging=False) as client:
        found = await client.get(f"/v1/alerts/{alert['id']}", headers=tokens("MY"))
        assert found.status_code == 200, found.text
        body = found.json()
        assert (body["status"], body["version"]) == ("acknowledged", 2)
        assert body["title"] == alert["title"]
        assert body["location"]["place_names"] == alert["location"]["place_names"]
        assert body["people_affected"]["estimate"] == alert["people_affected"]["estimate"]
        timeline = await client.get(f"/v1/alerts/{alert['id']}/timeline", headers=tokens("MY"))
        assert timeline.status_code == 200, timeline.text
        assert [entry["kind"] for entry in timeline.json()["items"]] == [
            row["kind"] for row in sorted(rows["alert_timeline"], key=lambda r: r["version"])
        ]
        expected = event_ids(rows, Stream.alerts)
        published = await read_topic(settings, STREAM_TOPICS[Stream.alerts], expected=len(expected))
        assert {str(event.id) for event in published} == expected


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("start", STARTS)
async def test_notifications_subscription_survives(
    start: str,
    backend: str,
    databases: DatabaseFactory,
    make_settings: SettingsFactory,
    tmp_path: Path,
) -> None:
    rows = release_rows("notifications")
    url = await upgraded("notifications", start, backend, databases, tmp_path, rows)
    await assert_audit_trail_append_only(url, len(rows["audit_records"]))
    settings = await make_settings(SETTINGS["notifications"], database_url=url)
    (subscription,) = rows["subscriptions"]
    async with running(create_app("notifications", settings), wait_for_messaging=False) as client:
        found = await client.get(
            f"/v1/subscriptions/{subscription['id']}", headers=TokenBook(settings)("MY")
        )
        assert found.status_code == 200, found.text
        body = found.json()
        for field in ("name", "channel", "email", "event_types", "area_numbers", "digest"):
            assert body[field] == subscription[field], field


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("start", STARTS)
async def test_reporting_starts_its_projections_over_from_the_topics(
    start: str,
    backend: str,
    databases: DatabaseFactory,
    make_settings: SettingsFactory,
    tmp_path: Path,
) -> None:
    """Release 0.1.0's reporting held only a tally of what its group `reporting.pipeline`
    consumed. Today's projections are filled by a new group from the earliest offset the topics
    hold, the tally among them, so the upgrade empties the old tally instead of letting the
    new group count those events a second time."""
    tally = {
        "event_type": "alert.raised",
        "stream": "alerts",
        "count": 3,
        "last_event_at": "2026-11-28T09:30:00",
    }
    url = await upgraded(
        "reporting", start, backend, databases, tmp_path, {"event_tallies": [tally]}
    )
    settings = await make_settings(SETTINGS["reporting"], database_url=url)
    ops = TokenBook(settings)("RSO", (Role.ops,))
    async with running(create_app("reporting", settings), wait_for_messaging=False) as client:
        found = await client.get("/v1/pipeline/event-counts", headers=ops)
        assert found.status_code == 200, found.text
        assert found.json()["items"] == []


@pytest.mark.parametrize("backend", BACKENDS)
async def test_the_three_planning_groups_inbox_ids_move_to_the_one_group_and_back(
    backend: str, databases: DatabaseFactory, tmp_path: Path
) -> None:
    """Notifications' revision 0004: the ids the three former groups applied now belong to
    `notifications.planning`, which skips what the broker still holds of them."""
    url = await empty_database(backend, databases, tmp_path, "notifications")
    await upgrade(url, history("notifications"), "0003", quiet=True)
    applied = [
        ("notifications.members", "bali.members"),
        ("notifications.alerts", "bali.alerts"),
        ("notifications.activities", "bali.activities"),
        ("another.group", "bali.alerts"),
    ]

    def record(connection: Connection) -> None:
        for number, (group, topic) in enumerate(applied):
            connection.execute(
                text(
                    "INSERT INTO inbox_entries (consumer_group, event_id, event_type, topic, "
                    "partition, \"offset\", processed_at) VALUES (:group, :event_id, 'x', "
                    ":topic, 0, :number, CURRENT_TIMESTAMP)"
                ),
                {"group": group, "event_id": f"e{number}", "topic": topic, "number": number},
            )

    def groups(connection: Connection) -> list[tuple[str, str]]:
        rows = connection.execute(
            text("SELECT event_id, consumer_group FROM inbox_entries ORDER BY event_id")
        )
        return [(row[0], row[1]) for row in rows]

    await on(url, record)
    await upgrade(url, history("notifications"), "0004", quiet=True)
    assert await on(url, groups) == [
        ("e0", "notifications.planning"),
        ("e1", "notifications.planning"),
        ("e2", "notifications.planning"),
        ("e3", "another.group"),
    ]
    await downgrade(url, history("notifications"), "0003", quiet=True)
    assert await on(url, groups) == [
        (f"e{number}", group) for number, (group, _) in enumerate(applied)
    ]
