"""Activities revision 0003: the list filters read JSON columns instead of `activity_index`.

Activities are written at revision 0002 as that revision's service wrote them (the activity row
and one index row per item, member, tag and country), then the database is upgraded to head.
Each filter must list, through today's API, exactly the activities the index rows matched; each
activity and its history read back as written; a downgrade builds the same index rows again.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from bali_activities.activities.models import STRATEGY
from bali_common.migrations import downgrade, upgrade
from bali_devkit.testing.plugin import (
    DatabaseFactory,
    SettingsFactory,
    TokenBook,
    running,
)
from migrations_support import (
    BACKENDS,
    SETTINGS,
    create_app,
    differences,
    empty_database,
    history,
    load_rows,
    on,
    release_rows,
)
from sqlalchemy import Connection, bindparam, text

PREVIOUS_HEAD = "0002"


def _activity(template: dict[str, Any], number: int, **changes: Any) -> dict[str, Any]:
    """A variant of the release's activity: no participants, tags or countries unless given."""
    row = copy.deepcopy(template)
    row.update({"participants": [], "tags": [], "countries": [], "description": ""})
    row.update(changes)
    row["id"] = f"00000000-0000-4000-8000-{number:012d}"
    row["created_at"] = row["updated_at"] = f"2026-11-28T10:00:{number:02d}"
    row["areas"] = sorted({STRATEGY.item(item).area_number for item in row["items"]})
    return row


def written_at_previous_head() -> dict[str, list[dict[str, Any]]]:
    """The release's rows plus activities of every shape a filter tells apart."""
    rows = release_rows("activities")
    (template,) = rows["activities"]
    rows["activities"] = [
        template,
        _activity(
            template,
            1,
            title="Border biometrics",
            lead_member="TH",
            items=[12, 15],
            tags=["biometrics"],
            countries=["KH", "TH"],
        ),
        _activity(
            template,
            2,
            title="Cyber training",
            lead_member="AU",
            participants=[{"member_id": "MY", "role": "funder"}],
            items=[1],
            tags=["digital literacy training"],
        ),
        _activity(
            template,
            3,
            title="Deleted workshop",
            lead_member="ID",
            items=[3],
            tags=["online scam operations"],
            countries=["ID"],
            deleted=True,
            deleted_at="2026-11-28T11:00:00",
        ),
        _activity(
            template,
            4,
            title="Scam compounds outreach",
            lead_member="MY",
            participants=[{"member_id": "KH", "role": "participant"}],
            items=[20, 21],
            countries=["MY"],
        ),
    ]
    rows["activity_index"] = sorted(
        (
            {"activity_id": activity["id"], "kind": kind, "value": value}
            for activity in rows["activities"]
            for kind, value in index_values(activity)
        ),
        key=lambda row: (row["activity_id"], row["kind"], row["value"]),
    )
    return rows


def index_values(activity: dict[str, Any]) -> set[tuple[str, str]]:
    """The index rows revision 0002's service wrote for an activity."""
    values = {("item", str(number)) for number in activity["items"]}
    values.add(("member", activity["lead_member"]))
    values |= {("member", p["member_id"]) for p in activity["participants"]}
    values |= {("tag", tag) for tag in activity["tags"]}
    values |= {("country", country) for country in activity["countries"]}
    return values


#: Each filter and the index rows revision 0002's service looked up for it: kind and values.
FILTERS: list[tuple[str, str, list[str]]] = [
    ("item=12", "item", ["12"]),
    ("item=3", "item", ["3"]),
    ("member=TH", "member", ["TH"]),
    ("member=MY", "member", ["MY"]),
    ("member=KH", "member", ["KH"]),
    ("tag=digital%20literacy", "tag", ["digital literacy"]),
    ("tag=biometrics", "tag", ["biometrics"]),
    ("country=TH", "country", ["TH"]),
    ("country=KH", "country", ["KH"]),
    ("country=FJ", "country", ["FJ"]),
]


def area_filter(item: int) -> tuple[str, str, list[str]]:
    area = STRATEGY.item(item).area_number
    return (f"area={area}", "item", [str(i.number) for i in STRATEGY.area(area).items])


def matched_by_index_rows(connection: Connection, kind: str, values: list[str]) -> set[str]:
    query = text(
        "SELECT id FROM activities WHERE NOT deleted AND id IN "
        "(SELECT activity_id FROM activity_index WHERE kind = :kind AND value IN :values)"
    ).bindparams(bindparam("values", expanding=True))
    rows = connection.execute(query, {"kind": kind, "values": values})
    return {row[0] for row in rows}


def searched_by_index_rows(connection: Connection, needle: str) -> set[str]:
    rows = connection.execute(
        text(
            "SELECT id FROM activities WHERE NOT deleted AND (lower(title) LIKE :like "
            "OR lower(description) LIKE :like OR id IN (SELECT activity_id FROM activity_index "
            "WHERE kind = 'tag' AND value LIKE :like))"
        ),
        {"like": f"%{needle}%"},
    )
    return {row[0] for row in rows}


def stored_index(connection: Connection) -> set[tuple[str, str, str]]:
    rows = connection.execute(text("SELECT activity_id, kind, value FROM activity_index"))
    return {(row[0], row[1], row[2]) for row in rows}


@pytest.mark.parametrize("backend", BACKENDS)
async def test_list_filters_find_what_the_index_rows_found(
    backend: str, databases: DatabaseFactory, make_settings: SettingsFactory, tmp_path: Path
) -> None:
    rows = written_at_previous_head()
    url = await empty_database(backend, databases, tmp_path, "activities")
    await upgrade(url, history("activities"), PREVIOUS_HEAD, quiet=True)
    await on(url, lambda connection: load_rows(connection, rows))
    filters = [*FILTERS, area_filter(12), area_filter(20)]
    expected = {
        query: await on(
            url, lambda c, kind=kind, values=values: matched_by_index_rows(c, kind, values)
        )
        for query, kind, values in filters
    }
    searches = ["scam", "literacy", "biometrics", "nothing like it"]
    expected |= {
        f"q={needle.replace(' ', '%20')}": await on(
            url, lambda c, needle=needle: searched_by_index_rows(c, needle)
        )
        for needle in searches
    }
    assert any(expected.values()), "the fixture matches something"

    await upgrade(url, history("activities"), quiet=True)
    assert await differences(url, "activities") == []
    settings = await make_settings(SETTINGS["activities"], database_url=url)
    tokens = TokenBook(settings)
    async with running(create_app("activities", settings), wait_for_messaging=False) as client:
        for query, matched in expected.items():
            listed = await client.get(f"/v1/activities?{query}&page_size=200", headers=tokens())
            assert listed.status_code == 200, listed.text
            assert {a["id"] for a in listed.json()["items"]} == matched, query
        everything = await client.get(
            "/v1/activities?include_deleted=true&member=ID&page_size=200",
            headers=tokens.ops(),
        )
        assert [a["title"] for a in everything.json()["items"]] == ["Deleted workshop"]
        for activity in rows["activities"]:
            found = await client.get(f"/v1/activities/{activity['id']}", headers=tokens("ID"))
            assert found.status_code == 200, found.text
            body = found.json()
            for field in ("title", "items", "areas", "lead_member", "countries", "tags", "outputs"):
                assert body[field] == activity[field], field
            assert body["participants"][1:] == activity["participants"]
        (version,) = rows["activity_versions"]
        history_page = await client.get(
            f"/v1/activities/{version['activity_id']}/history", headers=tokens("MY")
        )
        (read_back,) = history_page.json()["items"]
        assert read_back["changes"] == version["changes"]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_downgrade_builds_the_same_index_rows(
    backend: str, databases: DatabaseFactory, tmp_path: Path
) -> None:
    rows = written_at_previous_head()
    url = await empty_database(backend, databases, tmp_path, "activities")
    await upgrade(url, history("activities"), PREVIOUS_HEAD, quiet=True)
    await on(url, lambda connection: load_rows(connection, rows))
    written = await on(url, stored_index)
    await upgrade(url, history("activities"), quiet=True)
    await downgrade(url, history("activities"), PREVIOUS_HEAD, quiet=True)
    assert await on(url, stored_index) == written
    await upgrade(url, history("activities"), quiet=True)
    assert await differences(url, "activities") == []
