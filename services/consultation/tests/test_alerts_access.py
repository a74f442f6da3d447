"""Who sees restricted alerts: co-chairs, the raising member, affected members; others get 404."""

from __future__ import annotations

from typing import Any

import pytest
from bali_common.auth import Principal, Role
from bali_common.events.alerts import Sensitivity
from bali_common.visibility import alert_viewer
from bali_consultation.alerts import access
from bali_consultation.alerts.models import Alert
from consultation_testkit import Service

HIDDEN_READS = ["", "/timeline", "/cap.xml"]


async def _restricted(service: Service) -> dict[str, Any]:
    return await service.raise_alert(
        "MY",
        sensitivity="restricted",
        situation_type="online_scam_trafficking",
        affected_members=["TH"],
    )


async def test_restricted_alert_is_seen_by_co_chairs_raiser_and_affected_members(
    service: Service,
) -> None:
    alert = await _restricted(service)
    viewers = {
        "raiser": service.auth("MY"),
        "affected": service.auth("TH"),
        "co-chair": service.auth.co_chair("AU"),
        "admin": service.auth.admin(),
    }
    for who, headers in viewers.items():
        for suffix in HIDDEN_READS:
            response = await service.client.get(
                f"/v1/alerts/{alert['id']}{suffix}", headers=headers
            )
            assert response.status_code == 200, (who, suffix, response.text)
        listed = await service.client.get("/v1/alerts", headers=headers)
        assert alert["id"] in {a["id"] for a in listed.json()["items"]}, who


async def test_anyone_else_gets_the_same_404_as_for_an_alert_that_does_not_exist(
    service: Service,
) -> None:
    alert = await _restricted(service)
    outsiders = {
        "other member": service.auth("PH"),
        "ops": service.auth(None, (Role.ops,), subject="ops-1"),
        "member without id": service.auth(None, (Role.member,), subject="nobody"),
    }
    missing = "00000000-0000-0000-0000-000000000000"
    for who, headers in outsiders.items():
        for suffix in HIDDEN_READS:
            hidden = await service.client.get(f"/v1/alerts/{alert['id']}{suffix}", headers=headers)
            absent = await service.client.get(f"/v1/alerts/{missing}{suffix}", headers=headers)
            assert hidden.status_code == absent.status_code == 404, (who, suffix)
            assert hidden.json()["title"] == absent.json()["title"]
        for action, body in (("updates", {"text": "x"}), ("withdraw", {}), ("reopen", {})):
            hidden_write = await service.step(alert["id"], action, body, headers=headers)
            absent_write = await service.step(missing, action, body, headers=headers)
            assert hidden_write.status_code == absent_write.status_code == 404, (who, action)
        acknowledge = await service.step(alert["id"], "acknowledge", headers=headers)
        assert acknowledge.status_code == 404, who
        listed = await service.client.get("/v1/alerts", headers=headers)
        assert alert["id"] not in {a["id"] for a in listed.json()["items"]}, who
    anonymous_cap = await service.client.get(f"/v1/alerts/{alert['id']}/cap.xml")
    assert anonymous_cap.status_code == 404
    feed = await service.client.get("/v1/alerts/feed.atom")
    assert alert["id"] not in feed.text


async def test_public_alert_is_seen_by_every_caller_and_its_cap_needs_no_login(
    service: Service,
) -> None:
    alert = await service.raise_alert("MY", sensitivity="public")
    for headers in (service.auth("PH"), service.auth(None, (Role.ops,), subject="ops-1")):
        assert (await service.client.get(f"/v1/alerts/{alert['id']}", headers=headers)).is_success
    assert (await service.client.get(f"/v1/alerts/{alert['id']}")).status_code == 401
    cap = await service.client.get(f"/v1/alerts/{alert['id']}/cap.xml")
    assert cap.status_code == 200
    assert cap.headers["content-type"].startswith("application/cap+xml")
    bad_token = await service.client.get(
        f"/v1/alerts/{alert['id']}/cap.xml", headers={"Authorization": "Bearer nonsense"}
    )
    assert bad_token.status_code == 401, "a token that is sent must be valid"


async def test_making_an_alert_restricted_hides_it_from_outsiders(service: Service) -> None:
    alert = await service.raise_alert("MY", sensitivity="public")
    assert (
        await service.client.get(f"/v1/alerts/{alert['id']}", headers=service.auth("PH"))
    ).is_success
    changed = await service.client.post(
        f"/v1/alerts/{alert['id']}/updates",
        json={"text": "Names of victims involved", "sensitivity": "restricted"},
        headers={**service.auth("MY"), "If-Match": '"v1"'},
    )
    assert changed.status_code == 200
    hidden = await service.client.get(f"/v1/alerts/{alert['id']}", headers=service.auth("PH"))
    assert hidden.status_code == 404


async def test_changing_affected_members_changes_who_sees_the_alert(service: Service) -> None:
    alert = await _restricted(service)
    changed = await service.client.post(
        f"/v1/alerts/{alert['id']}/updates",
        json={"text": "Victims found in PH too", "affected_members": ["PH"]},
        headers={**service.auth.co_chair(), "If-Match": '"v1"'},
    )
    assert changed.status_code == 200
    for member, status in (("PH", 200), ("TH", 404)):
        response = await service.client.get(
            "/v1/alerts", params={"affected_member": "PH"}, headers=service.auth(member)
        )
        assert (alert["id"] in {a["id"] for a in response.json()["items"]}) is (status == 200)
        single = await service.client.get(f"/v1/alerts/{alert['id']}", headers=service.auth(member))
        assert single.status_code == status, member


async def test_the_co_chair_role_for_a_member_that_is_no_co_chair_shows_no_restricted_alert(
    service: Service,
) -> None:
    """The token's role alone is not enough: NZ is no co-chair (the directory, here its
    configured fallback, names ID and AU), so its `co_chair` token is an outsider's."""
    alert = await _restricted(service)
    headers = service.auth.co_chair("NZ")
    missing = "00000000-0000-0000-0000-000000000000"
    for suffix in HIDDEN_READS:
        hidden = await service.client.get(f"/v1/alerts/{alert['id']}{suffix}", headers=headers)
        absent = await service.client.get(f"/v1/alerts/{missing}{suffix}", headers=headers)
        assert hidden.status_code == absent.status_code == 404, suffix
    bodies = {
        "acknowledge": {},
        "escalate": {},
        "resolve": {"summary": "x"},
        "updates": {"text": "x"},
    }
    for action, body in bodies.items():
        hidden_write = await service.step(alert["id"], action, body, headers=headers)
        absent_write = await service.step(missing, action, body, headers=headers)
        assert hidden_write.status_code == absent_write.status_code == 404, action
    listed = await service.client.get("/v1/alerts", headers=headers)
    assert alert["id"] not in {a["id"] for a in listed.json()["items"]}
    assert (await service.get(alert["id"], service.auth.co_chair("AU")))["id"] == alert["id"]


async def test_only_acting_co_chairs_take_the_co_chairs_steps(service: Service) -> None:
    """Administrators see every alert but act for no co-chair; the role of a member that is no
    co-chair acts for none either. Both are refused after the alert was found (403)."""
    alert = await service.raise_alert("MY", sensitivity="public")
    for headers in (service.auth.co_chair("NZ"), service.auth.admin()):
        for action in ("acknowledge", "escalate"):
            refused = await service.step(alert["id"], action, headers=headers)
            assert refused.status_code == 403, (action, refused.text)
    updated = await service.client.post(
        f"/v1/alerts/{alert['id']}/updates", json={"text": "x"}, headers=service.auth.admin()
    )
    assert updated.status_code == 403
    assert (await service.get(alert["id"], service.auth.admin()))["status"] == "raised"
    acknowledged = await service.step(alert["id"], "acknowledge", headers=service.auth.co_chair())
    assert acknowledged.status_code == 200
    assert acknowledged.json()["acknowledged_by"]["member_id"] == "ID"


# --- the rules themselves, without a service ------------------------------------------------------

CO_CHAIRS = ("ID", "AU")
CALLERS = {
    "co-chair": Principal(subject="cc", member_id="AU", roles=frozenset({Role.co_chair})),
    "co_chair role of no co-chair": Principal(
        subject="th-cc", member_id="NZ", roles=frozenset({Role.co_chair})
    ),
    "co-chair member's plain user": Principal(
        subject="au", member_id="AU", roles=frozenset({Role.member})
    ),
    "admin": Principal(subject="admin", roles=frozenset({Role.admin})),
    "raiser": Principal(subject="my", member_id="MY", roles=frozenset({Role.member})),
    "affected": Principal(subject="th", member_id="TH", roles=frozenset({Role.member})),
    "other member": Principal(subject="ph", member_id="PH", roles=frozenset({Role.member})),
    "ops": Principal(subject="ops-1", member_id="RSO", roles=frozenset({Role.ops})),
    "member without id": Principal(subject="nobody", roles=frozenset({Role.member})),
}
SEE_RESTRICTED = {"co-chair", "admin", "raiser", "affected"}
POST_UPDATES = {"co-chair", "raiser", "affected"}


def alert_of(sensitivity: Sensitivity) -> Alert:
    return Alert(
        id="alert-1",
        sensitivity=sensitivity.value,
        raised_by_member="MY",
        affected_members=["TH"],
    )


@pytest.mark.parametrize("caller", list(CALLERS))
def test_only_those_involved_see_a_restricted_alert_and_everyone_a_public_one(caller: str) -> None:
    principal = CALLERS[caller]
    viewer = alert_viewer(principal, co_chair_members=CO_CHAIRS)
    restricted = alert_of(Sensitivity.restricted)
    assert access.can_see(restricted, viewer) is (caller in SEE_RESTRICTED)
    assert access.can_see(alert_of(Sensitivity.public), viewer) is True
    assert access.posts_updates(restricted, viewer) is (caller in POST_UPDATES)
    assert viewer.is_co_chair is (caller == "co-chair")
    assert access.is_raiser(alert_of(Sensitivity.public), principal) is (caller == "raiser")


def test_a_missing_and_a_hidden_alert_are_refused_alike() -> None:
    problem = access.not_visible("alert-1")
    assert (problem.status, problem.detail) == (404, "No alert alert-1 is visible to you.")
