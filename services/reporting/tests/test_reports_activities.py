"""Coverage, trends and indicators from activity events, as members and operators read them."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest_asyncio
from bali_common.events.activities import ActivityStatus, ActivityType, ParticipantRole
from reporting_testkit import (
    Reporting,
    activity,
    activity_event,
    member_event,
    output,
    publish,
)

TRAINED = "Officers trained"


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def loaded(service: Reporting) -> Reporting:
    events = [
        member_event("TH", name="Thailand"),
        member_event("IOM", name="International Organization for Migration"),
        # a1: item 12 (area 4) and 3 (area 1), led by TH, IOM participates; edited twice.
        activity_event(activity("a1", items=[3, 12], status=ActivityStatus.planned)),
        activity_event(
            activity(
                "a1",
                version=2,
                items=[3, 12],
                status=ActivityStatus.completed,
                outputs=[
                    output(TRAINED, 40, female=18, male=22, ages=[("25-39", 31), ("40-59", 9)])
                ],
            ),
            "status_changed",
        ),
        # a2: spans 2024-2025, item 12 only, cancelled: counted, but covers nothing.
        activity_event(
            activity(
                "a2",
                items=[12],
                status=ActivityStatus.cancelled,
                kind=ActivityType.training,
                lead="IOM",
                participants=[("TH", ParticipantRole.funder)],
                start=date(2024, 11, 1),
                end=date(2025, 2, 1),
                outputs=[output(" officers   TRAINED ", 10.5, female=4.25)],
            )
        ),
        # a3: deleted, then restored, then deleted again: counts nowhere.
        activity_event(activity("a3", items=[20])),
        activity_event(activity("a3", version=2, items=[20], deleted=True), "deleted"),
        activity_event(activity("a3", version=3, items=[20]), "restored"),
        activity_event(activity("a3", version=4, items=[20], deleted=True), "deleted"),
        # a4: deleted then restored: counts.
        activity_event(activity("a4", items=[9], lead="IOM", participants=[])),
        activity_event(
            activity("a4", version=2, items=[9], lead="IOM", participants=[], deleted=True),
            "deleted",
        ),
        activity_event(
            activity("a4", version=3, items=[9], lead="IOM", participants=[]), "restored"
        ),
    ]
    await publish(service.settings, events)
    await service.caught_up(len(events))
    return service


def item(report: dict[str, Any], number: int) -> dict[str, Any]:
    return next(i for i in report["items"] if i["item"] == number)


async def test_coverage_counts_each_activity_per_item_member_and_status(loaded: Reporting) -> None:
    response = await loaded.get("/v1/reports/coverage", headers=loaded.tokens("MY"), year=2025)
    assert response.status_code == 200, response.text
    report = response.json()
    assert len(report["items"]) == 25
    twelve = item(report, 12)
    assert twelve["area"] == 4
    assert twelve["by_status"] == {"cancelled": 1, "completed": 1}
    assert twelve["covered"] is True
    assert [(m["member_id"], m["role"], m["by_status"]) for m in twelve["members"]] == [
        ("IOM", "lead", {"cancelled": 1}),
        ("IOM", "participant", {"completed": 1}),
        ("TH", "lead", {"completed": 1}),
        ("TH", "participant", {"cancelled": 1}),
    ]
    assert report["member_names"] == {
        "IOM": "International Organization for Migration",
        "TH": "Thailand",
    }
    assert item(report, 20)["activities"] == 0, "deleted twice: counted nowhere"
    assert item(report, 9)["by_status"] == {"completed": 1}, "restored: counted again"
    assert 20 in report["uncovered_items"]
    assert not {3, 9, 12} & set(report["uncovered_items"])

    earlier = (await loaded.get("/v1/reports/coverage", year=2024)).json()
    assert item(earlier, 12)["by_status"] == {"cancelled": 1}
    assert 12 in earlier["uncovered_items"], "a cancelled activity covers nothing"


async def test_coverage_filters_narrow_items_members_and_statuses(loaded: Reporting) -> None:
    area = (await loaded.get("/v1/reports/coverage", year=2025, area=4)).json()
    assert [i["item"] for i in area["items"]] == [11, 12, 13, 14]
    one = (await loaded.get("/v1/reports/coverage", year=2025, item=12, member="th")).json()
    assert [i["item"] for i in one["items"]] == [12]
    assert {m["member_id"] for m in one["items"][0]["members"]} == {"TH"}
    done = (await loaded.get("/v1/reports/coverage", year=2025, status="completed")).json()
    assert item(done, 12)["by_status"] == {"completed": 1}
    assert item(done, 12)["covered"] is True
    default = (await loaded.get("/v1/reports/coverage")).json()
    assert default["year"] == 2025, "this year (the service's clock) by default"


async def test_trends_count_activities_per_area_and_start_month(loaded: Reporting) -> None:
    response = await loaded.get("/v1/reports/trends", date_from="2024-11-01", date_to="2025-03-31")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["months"] == ["2024-11", "2024-12", "2025-01", "2025-02", "2025-03"]
    cells = {
        (c["month"], c["area"], c["status"], c["type"]): c["activities"] for c in report["cells"]
    }
    assert cells == {
        ("2024-11", 4, "cancelled", "training"): 1,
        ("2025-03", 1, "completed", "workshop"): 1,
        ("2025-03", 4, "completed", "workshop"): 1,
        ("2025-03", 3, "completed", "workshop"): 1,
    }
    totals = {(t["month"], t["status"]): t["activities"] for t in report["totals"]}
    assert totals == {("2024-11", "cancelled"): 1, ("2025-03", "completed"): 2}
    area = (await loaded.get("/v1/reports/trends", date_from="2025-01-01", area=4)).json()
    assert {c["area"] for c in area["cells"]} == {4}


async def test_indicators_total_outputs_with_their_breakdowns(loaded: Reporting) -> None:
    response = await loaded.get("/v1/reports/indicators", headers=loaded.tokens("PH"))
    assert response.status_code == 200, response.text
    rows = {(r["year"], r["item"]): r for r in response.json()["items"]}
    assert set(rows) == {(2024, None), (2024, 12), (2025, None), (2025, 3), (2025, 12)}
    assert rows[(2024, 12)]["indicator"] == "officers trained", "names compared normalised"
    assert rows[(2024, 12)]["value"] == 10.5
    assert rows[(2024, 12)]["by_sex"] == {
        "outputs_with_sex": 1,
        "female": 4.25,
        "male": 0,
        "other": 0,
    }
    total = rows[(2025, None)]
    assert (total["outputs"], total["value"]) == (1, 40), "each output once over all items"
    assert total["by_age"] == [
        {"age_group": "25-39", "outputs": 1, "value": 31},
        {"age_group": "40-59", "outputs": 1, "value": 9},
    ]
    per_item = (await loaded.get("/v1/reports/indicators", year=2025, item=12)).json()["items"]
    assert [(r["item"], r["value"], r["by_sex"]["female"]) for r in per_item] == [(12, 40, 18)]


async def test_indicator_pages_follow_cursors_to_the_end(loaded: Reporting) -> None:
    seen: list[tuple[Any, ...]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"page_size": 2} | ({"cursor": cursor} if cursor else {})
        page = (await loaded.get("/v1/reports/indicators", **params)).json()
        seen += [(r["year"], r["item"]) for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [(2024, None), (2024, 12), (2025, None), (2025, 3), (2025, 12)]
