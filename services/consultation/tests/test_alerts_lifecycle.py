"""The alert lifecycle: every transition, who may take it, timeline, events, metrics, If-Match."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from bali_common.auth import Role
from bali_common.events import STREAM_TOPICS, Stream
from bali_consultation.alerts import lifecycle
from bali_consultation.alerts.models import Alert
from bali_consultation.settings import ConsultationSettings
from bali_devkit.testing.plugin import eventually, read_topic
from consultation_testkit import Service

CONSULTATION = {
    "convened_for": "2026-11-28T20:00:00+07:00",
    "participants": ["ID", "AU", "IOM"],
    "agenda": "Disembarkation options",
}
OUTREACH = {"reached_by": "AU", "reached": "Timor-Leste MFA", "outcome": "Agreed to disembark"}
ACTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "acknowledge": ("acknowledge", {}),
    "escalate": ("escalate", {"reason": "No answer", "notify_senior_officials": True}),
    "convene": ("consultations", CONSULTATION),
    "outreach": ("outreach", OUTREACH),
    "resolve": ("resolve", {"summary": "All disembarked safely"}),
    "withdraw": ("withdraw", {"reason": "Raised in error"}),
    "reopen": ("reopen", {"reason": "Boats adrift again"}),
    "update": ("updates", {"text": "Still adrift"}),
}
#: How to bring a fresh alert into each status, as (action) steps after raising.
PATHS: dict[str, list[str]] = {
    "raised": [],
    "escalated": ["escalate"],
    "acknowledged": ["acknowledge"],
    "consultation_convened": ["acknowledge", "convene"],
    "outreach_under_way": ["acknowledge", "convene", "outreach"],
    "resolved": ["acknowledge", "convene", "outreach", "resolve"],
    "withdrawn": ["withdraw"],
}
OPEN = ["raised", "escalated", "acknowledged", "consultation_convened", "outreach_under_way"]
#: (action, from status) -> status after it; missing pairs must answer 409.
ALLOWED: dict[tuple[str, str], str] = {
    ("acknowledge", "raised"): "acknowledged",
    ("acknowledge", "escalated"): "acknowledged",
    **{("escalate", s): ("escalated" if s == "raised" else s) for s in OPEN},
    **{
        ("convene", s): "consultation_convened"
        for s in ("acknowledged", "consultation_convened", "outreach_under_way")
    },
    **{
        ("outreach", s): "outreach_under_way"
        for s in ("consultation_convened", "outreach_under_way")
    },
    **{
        ("resolve", s): "resolved"
        for s in ("acknowledged", "consultation_convened", "outreach_under_way")
    },
    **{("withdraw", s): "withdrawn" for s in OPEN},
    ("reopen", "resolved"): "outreach_under_way",
    ("reopen", "withdrawn"): "raised",
    **{("update", s): s for s in OPEN},
}


async def alert_in_status(service: Service, status: str) -> dict[str, Any]:
    alert = await service.raise_alert()
    for action in PATHS[status]:
        path, body = ACTIONS[action]
        headers = service.auth("MY") if action == "withdraw" else service.auth.co_chair()
        response = await service.step(alert["id"], path, body, headers=headers)
        assert response.status_code == 200, response.text
        alert = response.json()
    assert alert["status"] == status
    return alert


@pytest.mark.parametrize("status", list(PATHS))
@pytest.mark.parametrize("action", list(ACTIONS))
async def test_every_transition_is_allowed_or_answers_409(
    service: Service, action: str, status: str
) -> None:
    alert = await alert_in_status(service, status)
    path, body = ACTIONS[action]
    response = await service.step(alert["id"], path, body)
    expected = ALLOWED.get((action, status))
    after = await service.get(alert["id"])
    if expected is None:
        assert response.status_code == 409, response.text
        assert response.json()["type"].endswith("/illegal-transition")
        assert after["version"] == alert["version"], "a refused step changes nothing"
    else:
        assert response.status_code == 200, response.text
        assert after["status"] == expected
        assert after["version"] == alert["version"] + 1
        assert response.headers["ETag"] == f'"v{after["version"]}"'


async def test_each_step_is_on_the_timeline_with_who_and_when_and_response_times(
    service: Service,
) -> None:
    raised_at = service.clock()
    alert = await service.raise_alert()
    alert_id = alert["id"]
    service.clock.advance(minutes=5)
    assert (
        await service.step(alert_id, "acknowledge", headers=service.auth.co_chair("ID"))
    ).is_success
    service.clock.advance(minutes=15)
    convened = await service.step(alert_id, "consultations", CONSULTATION)
    assert convened.status_code == 200
    await service.step(alert_id, "outreach", OUTREACH, headers=service.auth.co_chair("AU"))
    service.clock.advance(minutes=100)
    resolved = await service.step(alert_id, "resolve", {"summary": "All safe in Kupang"})
    assert resolved.status_code == 200
    body = resolved.json()
    assert body["response_times"] == {
        "seconds_to_acknowledge": 300.0,
        "seconds_to_convene": 1200.0,
        "seconds_to_resolve": 7200.0,
    }
    assert body["resolution_summary"] == "All safe in Kupang"
    assert body["open"] is False
    timeline = await service.timeline(alert_id)
    assert [(e["kind"], e["actor"]["member_id"]) for e in timeline] == [
        ("raised", "MY"),
        ("acknowledged", "ID"),
        ("consultation_convened", "ID"),
        ("outreach_logged", "AU"),
        ("resolved", "ID"),
    ]
    assert [e["version"] for e in timeline] == [1, 2, 3, 4, 5]
    assert timeline[0]["at"].startswith(raised_at.strftime("%Y-%m-%dT%H:%M:%S"))
    assert timeline[2]["details"]["participants"] == ["ID", "AU", "IOM"]
    assert timeline[3]["details"] == OUTREACH
    assert await service.staged_events(alert_id) == [
        "alert.raised",
        "alert.acknowledged",
        "alert.consultation_convened",
        "alert.outreach_logged",
        "alert.resolved",
    ]
    metrics = (await service.client.get("/metrics")).text
    assert 'bali_alert_seconds_to_acknowledge_count{severity="Extreme"}' in metrics


async def test_events_of_every_step_reach_the_alerts_topic_in_order(service: Service) -> None:
    alert = await alert_in_status(service, "withdrawn")
    await service.step(alert["id"], "reopen", {"reason": "again"}, headers=service.auth("MY"))
    await service.step(alert["id"], "updates", {"text": "Still adrift"})
    await service.step(alert["id"], "escalate", {"notify_senior_officials": True})
    await service.step(alert["id"], "acknowledge")
    await eventually(service.outbox_drained)
    mine = await read_topic(
        service.settings, STREAM_TOPICS[Stream.alerts], expected=6, subject=alert["id"]
    )
    assert [e.type for e in mine] == [
        "alert.raised",
        "alert.withdrawn",
        "alert.reopened",
        "alert.updated",
        "alert.escalated",
        "alert.acknowledged",
    ]
    assert [e.data["alert"]["version"] for e in mine] == [1, 2, 3, 4, 5, 6]
    escalated = mine[4].payload()
    assert escalated.model_dump()["notify_senior_officials"] is True
    assert escalated.model_dump()["reason"] == "manual"


async def test_only_co_chairs_drive_the_lifecycle_and_raiser_or_co_chair_withdraws(
    service: Service,
) -> None:
    alert = await service.raise_alert()
    member = service.auth("MY")
    for action in ("acknowledge", "escalate", "convene", "outreach", "resolve"):
        path, body = ACTIONS[action]
        response = await service.step(alert["id"], path, body, headers=member)
        assert response.status_code == 403, (action, response.text)
    ops = service.auth(None, (Role.ops,), subject="ops-1")
    assert (await service.step(alert["id"], "acknowledge", headers=ops)).status_code == 403
    other = await service.step(alert["id"], "withdraw", headers=service.auth("TH"))
    assert other.status_code == 403
    assert (await service.get(alert["id"]))["version"] == 1
    anonymous = await service.client.post(f"/v1/alerts/{alert['id']}/acknowledge")
    assert anonymous.status_code == 401
    withdrawn = await service.step(alert["id"], "withdraw", headers=member)
    assert withdrawn.status_code == 200


async def test_reopen_is_possible_only_within_the_reopen_period(service: Service) -> None:
    alert = await alert_in_status(service, "resolved")
    hours = service.settings.reopen_window_hours
    service.clock.advance(hours=hours - 1)
    reopened = await service.step(alert["id"], "reopen", {"reason": "New sighting"})
    assert reopened.status_code == 200
    assert reopened.json()["status"] == "outreach_under_way"
    assert reopened.json()["resolved_at"] is None
    resolved = await service.step(alert["id"], "resolve", {"summary": "Done"})
    assert resolved.json()["reopen_until"] is not None
    service.clock.advance(hours=hours, seconds=1)
    late = await service.step(alert["id"], "reopen", {"reason": "Too late"})
    assert late.status_code == 409
    assert "reopen period" in late.json()["detail"]


async def test_lifecycle_steps_honour_if_match_when_sent(service: Service) -> None:
    alert = await service.raise_alert()
    stale = await service.client.post(
        f"/v1/alerts/{alert['id']}/acknowledge",
        headers={**service.auth.co_chair(), "If-Match": '"v7"'},
    )
    assert stale.status_code == 412
    fresh = await service.client.post(
        f"/v1/alerts/{alert['id']}/acknowledge",
        headers={**service.auth.co_chair(), "If-Match": '"v1"'},
    )
    assert fresh.status_code == 200


# --- the transition table itself, without a service -----------------------------------------------

TRANSITIONS = {
    "acknowledge": lifecycle.ACKNOWLEDGE,
    "escalate": lifecycle.ESCALATE,
    "convene": lifecycle.CONVENE,
    "outreach": lifecycle.LOG_OUTREACH,
    "resolve": lifecycle.RESOLVE,
    "withdraw": lifecycle.WITHDRAW,
    "reopen": lifecycle.REOPEN,
}


@pytest.mark.parametrize("action", list(TRANSITIONS))
def test_the_transition_table_allows_exactly_the_documented_steps(action: str) -> None:
    allowed = {status.value for status in TRANSITIONS[action].allowed}
    assert allowed == {status for step, status in ALLOWED if step == action}


def test_withdraw_and_reopen_alone_are_open_to_the_raiser() -> None:
    raiser_too = {action for action, transition in TRANSITIONS.items() if transition.raiser_too}
    assert raiser_too == {"withdraw", "reopen"}


def test_acknowledging_and_closing_stop_the_escalation_timers() -> None:
    stopping = {action for action, t in TRANSITIONS.items() if t.stops_escalation}
    assert stopping == {"acknowledge", "resolve", "withdraw"}


def test_a_refused_step_names_the_status_and_the_way_out() -> None:
    problem = lifecycle.not_allowed(done="updated", status="resolved", hint="Reopen it first.")
    assert (problem.status, problem.slug) == (409, "illegal-transition")
    assert problem.detail == "An alert that is resolved cannot be updated. Reopen it first."
    bare = lifecycle.not_allowed(done="convened", status="raised")
    assert bare.detail == "An alert that is raised cannot be convened."


def test_the_reopen_deadline_runs_from_closing() -> None:
    settings = ConsultationSettings(reopen_window_hours=72)
    closed_at = datetime(2026, 11, 28, 16, 30)  # naive, as SQLite returns it
    open_alert = Alert(id="alert-1", closed_at=None)
    closed_alert = Alert(id="alert-1", closed_at=closed_at)
    assert lifecycle.reopen_deadline(alert=open_alert, settings=settings) is None
    assert lifecycle.reopen_deadline(alert=closed_alert, settings=settings) == datetime(
        2026, 12, 1, 16, 30, tzinfo=UTC
    )
