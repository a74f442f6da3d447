"""The alert board, response times, deliveries and follow-up, each under the visibility rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from bali_common.auth import Role
from bali_common.events.alerts import AlertStatus, Sensitivity, Severity
from bali_common.events.notifications import Channel
from reporting_testkit import (
    NOW,
    Reporting,
    activity,
    activity_event,
    alert,
    alert_event,
    delivery_event,
    member_event,
    publish,
)

PUBLIC_RAISED = NOW - timedelta(hours=3)
RESTRICTED_RAISED = datetime(2025, 10, 1, 8, 0, tzinfo=UTC)
OLD_RAISED = datetime(2025, 5, 1, 8, 0, tzinfo=UTC)


def steps(alert_id: str, statuses: list[AlertStatus], **fields: Any) -> list[Any]:
    times = {
        "acknowledged_after": timedelta(minutes=4),
        "convened_after": timedelta(hours=2),
        "resolved_after": timedelta(days=1),
    } | fields.pop("times", {})
    progress = [
        AlertStatus.acknowledged,
        AlertStatus.consultation_convened,
        AlertStatus.resolved,
    ]
    events = []
    for version, status in enumerate(statuses, start=1):
        reached = {
            "acknowledged_after": version >= 2 and status is not AlertStatus.withdrawn,
            "convened_after": version >= 3 and status in progress[1:],
            "resolved_after": status is AlertStatus.resolved,
        }
        summary = alert(
            alert_id,
            version=version,
            status=status,
            **fields,
            **{name: times[name] for name, on in reached.items() if on},
        )
        events.append(alert_event(summary, at=summary.raised_at + timedelta(minutes=version)))
    return events


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def loaded(service: Reporting) -> Reporting:
    raised = AlertStatus.raised
    events = [
        member_event("ID", name="Indonesia", co_chair=True),
        member_event("AU", name="Australia", co_chair=True),
        member_event("TH", name="Thailand"),
        *steps(
            "pub-1",
            [raised, AlertStatus.acknowledged, AlertStatus.consultation_convened],
            raised_by="TH",
            affected=["ID", "MY"],
            raised_at=PUBLIC_RAISED,
            title='=HYPERLINK("http://evil.example")',
        ),
        *steps(
            "res-1",
            [
                raised,
                AlertStatus.acknowledged,
                AlertStatus.consultation_convened,
                AlertStatus.resolved,
            ],
            raised_by="MY",
            affected=["AU"],
            severity=Severity.severe,
            sensitivity=Sensitivity.restricted,
            raised_at=RESTRICTED_RAISED,
            times={"acknowledged_after": timedelta(minutes=10)},
        ),
        *steps("wd-1", [raised, AlertStatus.withdrawn], severity=Severity.moderate, raised_at=NOW),
        *steps(
            "old-1",
            [raised, AlertStatus.acknowledged],
            raised_at=OLD_RAISED,
            times={"acknowledged_after": timedelta(minutes=20)},
        ),
        activity_event(activity("f1", items=[12, 13], lead="ID", related_alert_id="pub-1")),
        activity_event(activity("f2", items=[13], lead="AU", related_alert_id="res-1")),
        activity_event(activity("f3", items=[12], lead="TH", related_alert_id="not-yet-1")),
        activity_event(activity("f4", items=[12], lead="TH")),
        delivery_event("d1", "sent", alert_id="pub-1", at=PUBLIC_RAISED + timedelta(seconds=1)),
        delivery_event(
            "d1", "delivered", alert_id="pub-1", at=PUBLIC_RAISED + timedelta(seconds=3)
        ),
        delivery_event(
            "d2",
            "failed",
            alert_id="res-1",
            channel=Channel.webhook,
            warning=True,
            at=RESTRICTED_RAISED + timedelta(seconds=5),
        ),
        delivery_event(
            "d2",
            "exhausted",
            alert_id="res-1",
            channel=Channel.webhook,
            attempt=4,
            warning=True,
            at=RESTRICTED_RAISED + timedelta(hours=1),
            error="410 Gone",
        ),
        delivery_event("d3", "failed", alert_id="pub-1", channel=Channel.inbox, at=PUBLIC_RAISED),
        delivery_event(
            "d3",
            "delivered",
            alert_id="pub-1",
            channel=Channel.inbox,
            attempt=2,
            at=PUBLIC_RAISED + timedelta(seconds=20),
        ),
        delivery_event("d4", "exhausted", attempt=3, at=NOW),
        # The member named by res-1 and pub-1 joins the directory after the alerts.
        member_event("MY", name="Malaysia"),
    ]
    await publish(service.settings, events)
    await service.caught_up(len(events))
    return service


def ids(report: dict[str, Any]) -> list[str]:
    return [row["alert_id"] for row in report["items"]]


@pytest.mark.parametrize(
    ("caller", "expected"),
    [
        ({"member": None, "roles": [Role.admin]}, ["wd-1", "pub-1", "res-1", "old-1"]),
        ({"member": "ID", "roles": [Role.co_chair]}, ["wd-1", "pub-1", "res-1", "old-1"]),
        ({"member": "TH", "roles": [Role.co_chair]}, ["wd-1", "pub-1", "old-1"]),
        ({"member": "RSO", "roles": [Role.ops]}, ["wd-1", "pub-1", "old-1"]),
        ({"member": "MY", "roles": [Role.member]}, ["wd-1", "pub-1", "res-1", "old-1"]),
        ({"member": "AU", "roles": [Role.member]}, ["wd-1", "pub-1", "res-1", "old-1"]),
        ({"member": "PH", "roles": [Role.member]}, ["wd-1", "pub-1", "old-1"]),
    ],
)
async def test_the_board_shows_restricted_alerts_only_to_those_the_rule_allows(
    loaded: Reporting, caller: dict[str, Any], expected: list[str]
) -> None:
    headers = loaded.tokens(caller["member"], caller["roles"])
    board = (await loaded.get("/v1/reports/alerts", headers=headers)).json()
    assert ids(board) == expected
    assert sum(board["by_status"].values()) == len(expected)


async def test_a_board_row_has_state_age_members_and_last_step(loaded: Reporting) -> None:
    board = (await loaded.get("/v1/reports/alerts", headers=loaded.tokens.admin())).json()
    rows = {row["alert_id"]: row for row in board["items"]}
    public = rows["pub-1"]
    assert public["status"] == "consultation_convened"
    assert public["open"] is True
    assert public["age_seconds"] == 3 * 3600
    assert public["raised_by"] == {"member_id": "TH", "name": "Thailand"}
    assert public["affected_members"] == [
        {"member_id": "ID", "name": "Indonesia"},
        {"member_id": "MY", "name": "Malaysia"},
    ], "a member that joined the directory after the alert is named"
    assert public["last_step"]["step"] == "consultation_convened"
    assert public["last_step"]["by"] == "ID"
    assert (rows["res-1"]["open"], rows["res-1"]["age_seconds"]) == (False, None)
    assert rows["wd-1"]["status"] == "withdrawn"
    assert board["by_status"] == {
        "acknowledged": 1,
        "consultation_convened": 1,
        "resolved": 1,
        "withdrawn": 1,
    }


async def test_board_filters_and_pages(loaded: Reporting) -> None:
    admin = loaded.tokens.admin()

    async def board(**params: Any) -> list[str]:
        return ids((await loaded.get("/v1/reports/alerts", headers=admin, **params)).json())

    assert await board(severity="Extreme") == ["pub-1", "old-1"]
    assert await board(open="true") == ["pub-1", "old-1"]
    assert await board(status="resolved") == ["res-1"]
    assert await board(member="au") == ["res-1"]
    assert await board(date_from="2025-09-01", date_to="2025-10-31") == ["res-1"]
    first = (await loaded.get("/v1/reports/alerts", headers=admin, page_size=3)).json()
    rest = (
        await loaded.get(
            "/v1/reports/alerts", headers=admin, page_size=3, cursor=first["next_cursor"]
        )
    ).json()
    assert ids(first) + ids(rest) == ["wd-1", "pub-1", "res-1", "old-1"]
    assert rest["next_cursor"] is None


async def test_response_times_by_severity_and_quarter(loaded: Reporting) -> None:
    report = (
        await loaded.get("/v1/reports/response-times", headers=loaded.tokens.co_chair("AU"))
    ).json()
    cells = {(c["severity"], c["quarter"]): c for c in report["cells"]}
    assert set(cells) == {
        ("Extreme", "2025-Q2"),
        ("Extreme", "2025-Q4"),
        ("Severe", "2025-Q4"),
        ("Moderate", "2025-Q4"),
    }
    severe = cells[("Severe", "2025-Q4")]
    assert severe["acknowledge"] == {"alerts": 1, "median_s": 600, "p90_s": 600}
    assert severe["resolve"] == {"alerts": 1, "median_s": 86400, "p90_s": 86400}
    overall = {c["severity"]: c for c in report["overall"]}
    assert overall["Extreme"]["alerts"] == 2
    assert overall["Extreme"]["acknowledge"] == {"alerts": 2, "median_s": 240, "p90_s": 1200}
    assert overall["Extreme"]["convene"] == {"alerts": 1, "median_s": 7200, "p90_s": 7200}
    ops = (await loaded.get("/v1/reports/response-times")).json()
    assert "Severe" not in {c["severity"] for c in ops["overall"]}, "restricted: not for ops"
    q2 = (
        await loaded.get(
            "/v1/reports/response-times", headers=loaded.tokens.admin(), date_to="2025-06-30"
        )
    ).json()
    assert [(c["severity"], c["quarter"]) for c in q2["cells"]] == [("Extreme", "2025-Q2")]


async def test_delivery_health_per_channel_and_the_deliveries_given_up(loaded: Reporting) -> None:
    report = (await loaded.get("/v1/reports/deliveries", headers=loaded.tokens.admin())).json()
    channels = {c["channel"]: c for c in report["channels"]}
    email = channels["email"]
    assert (email["deliveries"], email["delivered"], email["exhausted"]) == (2, 1, 1)
    assert email["success_rate"] == 0.5
    assert email["alert_to_delivery_median_s"] == 3
    inbox = channels["inbox"]
    assert (inbox["attempts"], inbox["retried"], inbox["alert_to_delivery_p90_s"]) == (2, 1, 20)
    webhook = channels["webhook"]
    assert (webhook["exhausted"], webhook["operator_warnings"], webhook["pending"]) == (1, 1, 0)
    problems = {p["delivery_id"]: p for p in report["items"]}
    assert set(problems) == {"d2", "d4"}
    assert problems["d2"]["last_error"] == "410 Gone"
    assert problems["d2"]["alert_title"] == "Alert res-1"
    ops = (await loaded.get("/v1/reports/deliveries")).json()
    assert [p["delivery_id"] for p in ops["items"]] == ["d4"], "restricted alert: not listed"
    assert {c["channel"]: c["deliveries"] for c in ops["channels"]} == {
        "email": 2,
        "inbox": 1,
        "webhook": 1,
    }


async def test_follow_up_shows_activities_with_their_alerts(loaded: Reporting) -> None:
    report = (await loaded.get("/v1/reports/follow-up", headers=loaded.tokens.admin())).json()
    rows = {row["activity"]["activity_id"]: row for row in report["items"]}
    assert set(rows) == {"f1", "f2", "f3"}
    assert rows["f1"]["alert"]["status"] == "consultation_convened"
    assert rows["f1"]["activity"]["items"] == [12, 13]
    assert rows["f3"]["alert"] is None, "its alert has not reached reporting yet"
    ops = (await loaded.get("/v1/reports/follow-up")).json()
    assert [row["activity"]["activity_id"] for row in ops["items"]] == ["f1"]
    extreme = (
        await loaded.get("/v1/reports/follow-up", headers=loaded.tokens.admin(), severity="Severe")
    ).json()
    assert [row["alert_id"] for row in extreme["items"]] == ["res-1"]
    by_item = (
        await loaded.get(
            "/v1/reports/follow-up", headers=loaded.tokens.admin(), item=13, member="AU"
        )
    ).json()
    assert [row["alert_id"] for row in by_item["items"]] == ["res-1"]


@pytest.mark.parametrize("path", ["response-times", "deliveries", "pipeline", "follow-up"])
async def test_operations_reports_are_for_ops_admins_and_acting_co_chairs(
    loaded: Reporting, path: str
) -> None:
    url = f"/v1/reports/{path}"
    for headers, status in (
        (loaded.tokens("MY"), 403),
        (loaded.tokens("AU"), 403),  # a co-chair member's plain member token
        (loaded.tokens.co_chair("TH"), 403),  # the role, for a member that is not a co-chair
        (loaded.tokens.co_chair("ID"), 200),
        (loaded.tokens.ops(), 200),
        (loaded.tokens.admin(), 200),
    ):
        response = await loaded.get(url, headers=headers)
        assert response.status_code == status, (headers, response.text)
        if status == 403:
            assert response.headers["content-type"] == "application/problem+json"
    assert (await loaded.client.get(url)).status_code == 401
