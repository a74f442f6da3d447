"""The member directory: reference membership at first start, admin changes, `member.*` events."""

from __future__ import annotations

from typing import Any

from activities_testkit import Service, started
from bali_activities.members.reference import load_reference_members
from bali_common.auth import Role
from bali_common.events import Stream
from bali_common.events.members import MemberRegistered, MemberUpdated

ORGANISATIONS = {"IOM", "UNHCR", "UNODC", "ILO"}


async def _all_members(service: Service, headers: dict[str, str]) -> list[dict[str, Any]]:
    members: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"page_size": 20}
        if cursor:
            params["cursor"] = cursor
        response = await service.client.get("/v1/members", params=params, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        members += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return members


async def test_first_start_loads_the_bali_process_membership(service: Service) -> None:
    members = {m["member_id"]: m for m in await _all_members(service, service.tokens.ops())}
    states = {k for k, m in members.items() if m["kind"] == "member_state"}
    assert len(states) == 45
    assert {"AU", "ID", "TH", "MY", "NZ", "US", "VN", "TR", "HK", "MO"} <= states
    assert {k for k, m in members.items() if m["kind"] == "international_organisation"} == (
        ORGANISATIONS
    )
    assert [k for k, m in members.items() if m["kind"] == "regional_support_office"] == ["RSO"]
    assert {"WG-TIP", "TEG-RR"} <= {k for k, m in members.items() if m["kind"] == "working_group"}
    assert {k for k, m in members.items() if m["is_co_chair"]} == {"AU", "ID"}
    for member in members.values():
        assert member["version"] == 1
        for contact in member["focal_points"]:
            assert contact["email"].endswith(".example"), "only fictional example addresses"
    senior = {
        k
        for k, m in members.items()
        if any(c["role"] == "senior_official" for c in m["focal_points"])
    }
    assert senior == {"AU", "ID"}


async def test_every_seeded_member_is_announced_once_with_member_registered(
    service: Service,
) -> None:
    for member_id in ("AU", "IOM", "WG-TIP"):
        events = await service.events(Stream.members, subject=member_id, expected=1)
        assert [e.type for e in events] == ["member.registered"]
        payload = events[0].payload()
        assert isinstance(payload, MemberRegistered)
        assert payload.member_id == member_id
        assert payload.is_co_chair is (member_id == "AU")
        assert payload.focal_points


async def test_a_restart_does_not_seed_again(service: Service) -> None:
    async with started(service.settings) as second_life:
        response = await second_life.client.get(
            "/v1/members/AU", headers=second_life.tokens.admin()
        )
        assert response.json()["version"] == 1
    events = await service.events(Stream.members, subject="NZ", expected=1)
    assert len(events) == 1
    assert len(load_reference_members()) == 54


async def test_contacts_are_shown_only_to_staff_and_the_member_itself(service: Service) -> None:
    own = await service.client.get("/v1/members/MY", headers=service.tokens("MY"))
    other = await service.client.get("/v1/members/TH", headers=service.tokens("MY"))
    co_chair = await service.client.get("/v1/members/TH", headers=service.tokens.co_chair())
    assert own.json()["focal_points"]
    assert other.json()["focal_points"] is None
    assert co_chair.json()["focal_points"]
    assert other.headers["ETag"] == '"v1"'


async def test_a_co_chair_role_of_a_member_not_listed_as_co_chair_sees_as_a_member(
    service: Service,
) -> None:
    """The platform's one co-chair rule: the role counts only for a member the directory
    lists as co-chair (NZ is not), for contacts and for deleted activities alike."""
    not_acting = service.tokens.co_chair("NZ")
    one = await service.client.get("/v1/members/TH", headers=not_acting)
    listed = await service.client.get("/v1/members", params={"q": "TH"}, headers=not_acting)
    assert one.json()["focal_points"] is None
    assert all(m["focal_points"] is None for m in listed.json()["items"] if m["member_id"] != "NZ")
    activity = await service.create("MY")
    gone = await service.client.delete(
        f"/v1/activities/{activity['id']}", headers=service.tokens("MY")
    )
    assert gone.status_code == 200
    hidden = await service.client.get(f"/v1/activities/{activity['id']}", headers=not_acting)
    assert hidden.status_code == 404
    with_deleted = await service.client.get(
        "/v1/activities", params={"include_deleted": "true"}, headers=not_acting
    )
    assert activity["id"] not in {a["id"] for a in with_deleted.json()["items"]}
    acting = service.tokens.co_chair("AU")
    assert (await service.client.get(f"/v1/activities/{activity['id']}", headers=acting)).json()[
        "deleted"
    ]
    seen = await service.client.get(
        "/v1/activities", params={"include_deleted": "true"}, headers=acting
    )
    assert activity["id"] in {a["id"] for a in seen.json()["items"]}


async def test_directory_filters(service: Service) -> None:
    headers = service.tokens.ops()
    co_chairs = await service.client.get(
        "/v1/members", params={"is_co_chair": "true"}, headers=headers
    )
    assert {m["member_id"] for m in co_chairs.json()["items"]} == {"AU", "ID"}
    organisations = await service.client.get(
        "/v1/members", params={"kind": "international_organisation"}, headers=headers
    )
    assert {m["member_id"] for m in organisations.json()["items"]} == ORGANISATIONS
    lao = await service.client.get("/v1/members", params={"q": "lao"}, headers=headers)
    assert [m["member_id"] for m in lao.json()["items"]] == ["LA"]


async def test_admin_registers_a_member_and_it_is_announced(service: Service) -> None:
    body = {
        "member_id": "WG-BM",
        "name": "Working Group on Border Management",
        "kind": "working_group",
        "focal_points": [{"name": "Example Focal Point", "email": "focal.point@wg-bm.example"}],
    }
    headers = {**service.tokens.admin(), "Idempotency-Key": "register-wg-bm"}
    created = await service.client.post("/v1/members", json=body, headers=headers)
    replayed = await service.client.post("/v1/members", json=body, headers=headers)
    assert created.status_code == 201, created.text
    assert replayed.status_code == 201
    assert replayed.json() == created.json()
    assert created.headers["Location"] == "/v1/members/WG-BM"
    again = await service.client.post("/v1/members", json=body, headers=service.tokens.admin())
    assert again.status_code == 409
    events = await service.events(Stream.members, subject="WG-BM", expected=1)
    assert [e.type for e in events] == ["member.registered"]


async def test_admin_changes_a_member_and_its_focal_points_with_if_match(
    service: Service,
) -> None:
    admin = service.tokens.admin()
    renamed = await service.client.patch(
        "/v1/members/FJ", json={"name": "Republic of Fiji"}, headers={**admin, "If-Match": '"v1"'}
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["version"] == 2
    stale = await service.client.patch(
        "/v1/members/FJ", json={"name": "Fiji"}, headers={**admin, "If-Match": '"v1"'}
    )
    assert stale.status_code == 412
    missing = await service.client.patch("/v1/members/FJ", json={"name": "Fiji"}, headers=admin)
    assert missing.status_code == 428
    added = await service.client.post(
        "/v1/members/FJ/focal-points",
        json={
            "name": "Example Duty Officer",
            "email": "duty.officer@fj.example",
            "webhook_url": "https://hooks.fj.example/bali",
        },
        headers=admin,
    )
    assert added.status_code == 201, added.text
    contact_id = added.headers["Location"].rsplit("/", 1)[1]
    assert added.json()["version"] == 3
    changed = await service.client.patch(
        f"/v1/members/FJ/focal-points/{contact_id}",
        json={"webhook_url": None, "role": "senior_official"},
        headers={**admin, "If-Match": '"v3"'},
    )
    assert changed.status_code == 200, changed.text
    contact = next(c for c in changed.json()["focal_points"] if c["focal_point_id"] == contact_id)
    assert contact["webhook_url"] is None
    assert contact["role"] == "senior_official"
    removed = await service.client.delete(
        "/v1/members/FJ/focal-points/fj-focal-point", headers=admin
    )
    assert removed.status_code == 200
    assert [c["focal_point_id"] for c in removed.json()["focal_points"]] == [contact_id]

    events = await service.events(Stream.members, subject="FJ", expected=5)
    assert [e.type for e in events] == ["member.registered"] + ["member.updated"] * 4
    payloads = [e.payload() for e in events]
    assert [p.version for p in payloads if isinstance(p, MemberUpdated)] == [2, 3, 4, 5]
    last = payloads[-1]
    assert isinstance(last, MemberUpdated)
    assert last.name == "Republic of Fiji"
    assert [c.focal_point_id for c in last.focal_points] == [contact_id]


async def test_a_change_that_changes_nothing_publishes_nothing(service: Service) -> None:
    current = await service.client.get("/v1/members/NR", headers=service.tokens.admin())
    same = await service.client.patch(
        "/v1/members/NR",
        json={"name": current.json()["name"]},
        headers={**service.tokens.admin(), "If-Match": current.headers["ETag"]},
    )
    assert same.status_code == 200
    assert same.json()["version"] == 1
    assert len(await service.events(Stream.members, subject="NR", expected=1)) == 1


async def test_only_admins_change_the_directory(service: Service) -> None:
    for headers in (service.tokens("AU"), service.tokens.co_chair("AU"), service.tokens.ops()):
        attempts = [
            await service.client.post(
                "/v1/members",
                json={"member_id": "XX", "name": "Nowhere", "kind": "member_state"},
                headers=headers,
            ),
            await service.client.patch(
                "/v1/members/AU", json={"name": "Mine"}, headers={**headers, "If-Match": '"v1"'}
            ),
            await service.client.post(
                "/v1/members/AU/focal-points",
                json={"name": "Someone", "email": "someone@au.example"},
                headers=headers,
            ),
            await service.client.patch(
                "/v1/members/AU/focal-points/au-focal-point",
                json={"name": "Someone"},
                headers={**headers, "If-Match": '"v1"'},
            ),
            await service.client.delete(
                "/v1/members/AU/focal-points/au-focal-point", headers=headers
            ),
        ]
        assert [a.status_code for a in attempts] == [403] * 5
        assert all(a.headers["content-type"] == "application/problem+json" for a in attempts)
    denied = [r for r in await service.audit_rows() if r.outcome == "denied"]
    assert len(denied) >= 15


async def test_invalid_member_input_names_the_field(service: Service) -> None:
    admin = service.tokens.admin()
    cases = [
        ({"member_id": "x", "name": "N", "kind": "member_state"}, "body.member_id"),
        ({"member_id": "XY", "name": "", "kind": "member_state"}, "body.name"),
        ({"member_id": "XY", "name": "N", "kind": "planet"}, "body.kind"),
        ({"member_id": "XY", "name": "N", "kind": "member_state", "version": 7}, "body.version"),
        (
            {
                "member_id": "XY",
                "name": "N",
                "kind": "member_state",
                "focal_points": [{"name": "A", "email": "not-an-email"}],
            },
            "body.focal_points.0.email",
        ),
        (
            {
                "member_id": "XY",
                "name": "N",
                "kind": "member_state",
                "focal_points": [{"name": "A", "email": "a@b.example", "webhook_url": "ftp://x"}],
            },
            "body.focal_points.0.webhook_url",
        ),
    ]
    for body, field_name in cases:
        response = await service.client.post("/v1/members", json=body, headers=admin)
        assert response.status_code == 422, body
        assert response.headers["content-type"] == "application/problem+json"
        assert field_name in [e["field"] for e in response.json()["errors"]], response.json()
    null_name = await service.client.patch(
        "/v1/members/TO", json={"name": None}, headers={**admin, "If-Match": '"v1"'}
    )
    assert null_name.status_code == 422
    assert null_name.json()["errors"][0]["field"] == "body.name"


async def test_reading_the_directory_needs_a_role(service: Service) -> None:
    anonymous = await service.client.get("/v1/members")
    assert anonymous.status_code == 401
    roleless = await service.client.get("/v1/members", headers=service.tokens("AU", roles=()))
    assert roleless.status_code == 403
    missing = await service.client.get("/v1/members/ZZ", headers=service.tokens("AU"))
    assert missing.status_code == 404
    allowed = await service.client.get(
        "/v1/members/AU", headers=service.tokens("AU", [Role.member])
    )
    assert allowed.status_code == 200
