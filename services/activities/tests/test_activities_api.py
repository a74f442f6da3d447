"""The activity log over HTTP: create, read, list, change, delete, restore, history, authz."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from uuid import uuid4

import httpx
from activities_testkit import FUTURE, PAST, TODAY, Service, activity_body
from bali_common.auth import Role

PROBLEM = "application/problem+json"


def fields_of(response: httpx.Response) -> list[str]:
    assert response.headers["content-type"] == PROBLEM, response.text
    return [error["field"] for error in response.json().get("errors", [])]


# --- create and read --------------------------------------------------------------------------


async def test_a_member_logs_an_activity_it_leads(service: Service) -> None:
    response = await service.client.post(
        "/v1/activities", json=activity_body(items=[12, 3]), headers=service.tokens("MY")
    )
    assert response.status_code == 201, response.text
    activity = response.json()
    assert activity["lead_member"] == "MY"
    assert activity["version"] == 1
    assert activity["items"] == [3, 12]
    assert activity["areas"] == [1, 4], "areas derived from the items"
    assert activity["participants"] == [
        {"member_id": "MY", "role": "lead"},
        {"member_id": "TH", "role": "co_lead"},
        {"member_id": "IOM", "role": "participant"},
    ]
    assert activity["tags"] == ["online scam operations", "digital literacy"]
    assert activity["outputs"][0]["by_sex"]["female"] == 18
    assert response.headers["ETag"] == '"v1"'
    assert response.headers["Location"] == f"/v1/activities/{activity['id']}"

    read = await service.get(activity["id"], headers=service.tokens("NZ"))
    assert read.status_code == 200
    assert read.json() == activity
    assert read.headers["ETag"] == '"v1"'


async def test_an_admin_logs_an_activity_for_a_named_lead_member(service: Service) -> None:
    without_lead = await service.client.post(
        "/v1/activities", json=activity_body(), headers=service.tokens.admin()
    )
    assert without_lead.status_code == 422
    assert fields_of(without_lead) == ["body.lead_member"]
    created = await service.client.post(
        "/v1/activities", json=activity_body(lead_member="UNODC"), headers=service.tokens.admin()
    )
    assert created.status_code == 201, created.text
    assert created.json()["lead_member"] == "UNODC"


async def test_missing_and_malformed_ids_answer_404(service: Service) -> None:
    assert (await service.get(str(uuid4()))).status_code == 404
    assert (await service.get("not-an-id")).status_code == 404


async def test_calls_without_a_usable_token_are_refused(service: Service) -> None:
    assert (await service.client.get("/v1/activities")).status_code == 401
    roleless = service.tokens("MY", roles=())
    assert (await service.client.get("/v1/activities", headers=roleless)).status_code == 403
    ops_write = await service.client.post(
        "/v1/activities", json=activity_body(), headers=service.tokens.ops()
    )
    assert ops_write.status_code == 403


# --- idempotency ------------------------------------------------------------------------------


async def _count_titled(service: Service, title: str) -> int:
    response = await service.client.get(
        "/v1/activities", params={"q": title}, headers=service.tokens.admin()
    )
    return len(response.json()["items"])


async def test_a_repeated_idempotency_key_creates_one_activity(service: Service) -> None:
    body = activity_body()
    headers = {**service.tokens("MY"), "Idempotency-Key": f"key-{uuid4()}"}
    first = await service.client.post("/v1/activities", json=body, headers=headers)
    again = [
        await service.client.post("/v1/activities", json=body, headers=headers) for _ in range(3)
    ]
    assert first.status_code == 201
    for replay in again:
        assert replay.status_code == 201
        assert replay.json() == first.json()
        assert replay.headers["ETag"] == first.headers["ETag"]
        assert replay.headers["Idempotent-Replayed"] == "true"
    assert await _count_titled(service, body["title"]) == 1

    other_body = await service.client.post(
        "/v1/activities", json={**body, "title": "Something else"}, headers=headers
    )
    assert other_body.status_code == 422
    assert other_body.headers["content-type"] == PROBLEM


async def test_concurrent_requests_with_one_idempotency_key_create_one_activity(
    service: Service,
) -> None:
    body = activity_body()
    headers = {**service.tokens("MY"), "Idempotency-Key": f"key-{uuid4()}"}
    responses = await asyncio.gather(
        *(service.client.post("/v1/activities", json=body, headers=headers) for _ in range(10))
    )
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}
    assert 201 in statuses
    assert len({r.json()["id"] for r in responses if r.status_code == 201}) == 1
    assert await _count_titled(service, body["title"]) == 1


async def test_the_same_key_from_another_member_is_another_request(service: Service) -> None:
    key = f"key-{uuid4()}"
    mine = await service.client.post(
        "/v1/activities",
        json=activity_body(),
        headers={**service.tokens("MY"), "Idempotency-Key": key},
    )
    theirs = await service.client.post(
        "/v1/activities",
        json=activity_body(),
        headers={**service.tokens("PH"), "Idempotency-Key": key},
    )
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert theirs.json()["lead_member"] == "PH"


# --- validation -------------------------------------------------------------------------------


async def test_each_invalid_input_is_a_problem_naming_the_field(service: Service) -> None:
    late = PAST + timedelta(days=5)
    cases: list[tuple[dict[str, Any], str]] = [
        (activity_body(items=[3, 26]), "body.items.1"),
        (activity_body(items=[0]), "body.items.0"),
        (activity_body(items=[]), "body.items"),
        (activity_body(items=[3, 3]), "body.items.1"),
        (
            activity_body(planned_start=late.isoformat(), planned_end=PAST.isoformat()),
            "body.planned_end",
        ),
        (
            activity_body(actual_start=late.isoformat(), actual_end=PAST.isoformat()),
            "body.actual_end",
        ),
        (activity_body(actual_start=FUTURE.isoformat(), actual_end=None), "body.actual_start"),
        (activity_body(actual_end=FUTURE.isoformat()), "body.actual_end"),
        (activity_body(title="x" * 201), "body.title"),
        (activity_body(title="   "), "body.title"),
        (activity_body(description="x" * 5001), "body.description"),
        (activity_body(tags=[f"tag {n}" for n in range(21)]), "body.tags"),
        (activity_body(tags=["x" * 51]), "body.tags.0"),
        (activity_body(countries=["Thailand"]), "body.countries.0"),
        (activity_body(type="picnic"), "body.type"),
        (activity_body(status="finished"), "body.status"),
        (
            activity_body(participants=[{"member_id": "ZZ", "role": "participant"}]),
            "body.participants.0.member_id",
        ),
        (
            activity_body(participants=[{"member_id": "TH", "role": "lead"}]),
            "body.participants.0.role",
        ),
        (
            activity_body(participants=[{"member_id": "TH"}, {"member_id": "TH"}]),
            "body.participants.1.member_id",
        ),
        (
            activity_body(
                outputs=[{"indicator": "trained", "value": 10, "by_sex": {"female": 11}}]
            ),
            "body.outputs.0.by_sex",
        ),
        (
            activity_body(
                outputs=[
                    {
                        "indicator": "trained",
                        "value": 10,
                        "by_age": [{"age_group": "18-24", "value": 12}],
                    }
                ]
            ),
            "body.outputs.0.by_age",
        ),
        (activity_body(outputs=[{"indicator": "trained", "value": -1}]), "body.outputs.0.value"),
        (
            activity_body(documents=[{"title": "x", "url": "javascript:alert(1)"}]),
            "body.documents.0.url",
        ),
        (activity_body(related_alert_id="a b"), "body.related_alert_id"),
    ]
    for body, field_name in cases:
        response = await service.client.post(
            "/v1/activities", json=body, headers=service.tokens("MY")
        )
        assert response.status_code == 422, (field_name, response.text)
        assert field_name in fields_of(response), (field_name, response.json())
        assert field_name in response.json()["detail"]


async def test_every_broken_rule_is_reported_at_once(service: Service) -> None:
    body = activity_body(
        planned_start=PAST.isoformat(),
        planned_end=(PAST - timedelta(days=1)).isoformat(),
        actual_end=FUTURE.isoformat(),
        participants=[{"member_id": "ZZ"}],
    )
    response = await service.client.post("/v1/activities", json=body, headers=service.tokens("MY"))
    assert response.status_code == 422
    assert set(fields_of(response)) == {
        "body.planned_end",
        "body.actual_end",
        "body.participants.0.member_id",
    }


async def test_server_owned_fields_are_refused_not_assigned(service: Service) -> None:
    for owned in ("id", "version", "created_at", "updated_at", "deleted", "deleted_at", "areas"):
        response = await service.client.post(
            "/v1/activities", json={**activity_body(), owned: "x"}, headers=service.tokens("MY")
        )
        assert response.status_code == 422
        assert fields_of(response) == [f"body.{owned}"]
    activity = await service.create("MY")
    patched = await service.patch(
        activity["id"], {"version": 99, "deleted": True}, version=1, member="MY"
    )
    assert patched.status_code == 422
    assert set(fields_of(patched)) == {"body.version", "body.deleted"}
    unchanged = await service.get(activity["id"])
    assert unchanged.json()["version"] == 1


async def test_list_parameters_are_validated(service: Service) -> None:
    headers = service.tokens("MY")
    cases = [
        ({"page_size": 1000000}, "query.page_size"),
        ({"page_size": 0}, "query.page_size"),
        ({"item": 26}, "query.item"),
        ({"area": 9}, "query.area"),
        ({"cursor": "not-a-cursor"}, "query.cursor"),
        ({"cursor": "WzFd"}, "query.cursor"),
        ({"date_from": "2025-05-01", "date_to": "2025-04-01"}, "query.date_to"),
        ({"status": "finished"}, "query.status"),
        ({"type": "picnic"}, "query.type"),
        ({"member": "not a member"}, "query.member"),
    ]
    for params, field_name in cases:
        response = await service.client.get("/v1/activities", params=params, headers=headers)
        assert response.status_code == 422, (params, response.text)
        assert field_name in fields_of(response)


# --- update -----------------------------------------------------------------------------------


async def test_update_needs_the_current_etag(service: Service) -> None:
    activity = await service.create("MY", status="ongoing", actual_end=None)
    without = await service.client.patch(
        f"/v1/activities/{activity['id']}", json={"title": "New"}, headers=service.tokens("MY")
    )
    assert without.status_code == 428
    updated = await service.patch(activity["id"], {"title": "New title"}, version=1)
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2
    assert updated.headers["ETag"] == '"v2"'
    stale = await service.patch(activity["id"], {"title": "Other title"}, version=1)
    assert stale.status_code == 412
    assert stale.headers["content-type"] == PROBLEM
    assert (await service.get(activity["id"])).json()["title"] == "New title"


async def test_an_update_is_checked_against_the_merged_activity(service: Service) -> None:
    activity = await service.create("MY")
    response = await service.patch(
        activity["id"], {"planned_end": (PAST - timedelta(days=3)).isoformat()}, version=1
    )
    assert response.status_code == 422
    assert fields_of(response) == ["body.planned_end"]
    nulls = await service.patch(activity["id"], {"title": None, "items": None}, version=1)
    assert nulls.status_code == 422
    assert set(fields_of(nulls)) == {"body.title", "body.items"}
    cleared = await service.patch(activity["id"], {"actual_end": None}, version=1)
    assert cleared.status_code == 200
    assert cleared.json()["actual_end"] is None


async def test_an_update_that_changes_nothing_keeps_the_version(service: Service) -> None:
    activity = await service.create("MY")
    same = await service.patch(
        activity["id"], {"title": activity["title"], "items": [12, 3]}, version=1
    )
    assert same.status_code == 200
    assert same.json()["version"] == 1


async def test_twenty_concurrent_updates_with_one_etag_have_one_winner(service: Service) -> None:
    activity = await service.create("MY")
    responses = await asyncio.gather(
        *(
            service.patch(activity["id"], {"title": f"Concurrent title {n}"}, version=1)
            for n in range(20)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [412] * 19
    winner = next(r for r in responses if r.status_code == 200).json()
    current = (await service.get(activity["id"])).json()
    assert current["version"] == 2
    assert current["title"] == winner["title"]
    history = await service.client.get(
        f"/v1/activities/{activity['id']}/history", headers=service.tokens.admin()
    )
    assert [v["version"] for v in history.json()["items"]] == [1, 2]


async def test_only_an_admin_hands_an_activity_to_another_lead(service: Service) -> None:
    activity = await service.create("MY")
    by_member = await service.patch(activity["id"], {"lead_member": "TH"}, version=1)
    assert by_member.status_code == 403
    assert fields_of(by_member) == ["body.lead_member"]
    by_admin = await service.patch(
        activity["id"],
        {"lead_member": "SG", "participants": [{"member_id": "MY", "role": "co_lead"}]},
        version=1,
        headers=service.tokens.admin(),
    )
    assert by_admin.status_code == 200, by_admin.text
    assert by_admin.json()["participants"] == [
        {"member_id": "SG", "role": "lead"},
        {"member_id": "MY", "role": "co_lead"},
    ]
    former_lead = await service.patch(activity["id"], {"title": "Mine again?"}, version=2)
    assert former_lead.status_code == 403


# --- authorization ----------------------------------------------------------------------------


async def test_every_write_route_refuses_another_members_token(service: Service) -> None:
    activity = await service.create("MY")
    deleted = await service.create("MY")
    gone = await service.client.delete(
        f"/v1/activities/{deleted['id']}", headers=service.tokens("MY")
    )
    assert gone.status_code == 200
    intruders = {
        "another member": service.tokens("TH"),
        "a participant": service.tokens("IOM"),
        "a co-chair": service.tokens.co_chair("AU"),
        "operations": service.tokens.ops(),
    }
    for who, headers in intruders.items():
        url = f"/v1/activities/{activity['id']}"
        attempts = {
            "create for MY": await service.client.post(
                "/v1/activities", json=activity_body(lead_member="MY"), headers=headers
            ),
            "update": await service.client.patch(
                url, json={"title": "Taken over"}, headers={**headers, "If-Match": '"v1"'}
            ),
            "delete": await service.client.delete(url, headers=headers),
            "restore": await service.client.post(f"{url}/restore", headers=headers),
            "restore deleted": await service.client.post(
                f"/v1/activities/{deleted['id']}/restore", headers=headers
            ),
            "import update": await service.client.post(
                "/v1/activities/import",
                files={"file": ("a.csv", f"id,title\r\n{activity['id']},Taken over\r\n")},
                headers=headers,
            ),
        }
        for what, response in attempts.items():
            assert response.status_code in (403, 404, 422), (who, what, response.text)
            assert response.headers["content-type"] == PROBLEM
        if who == "another member":
            assert attempts["create for MY"].status_code == 403
            assert fields_of(attempts["create for MY"]) == ["body.lead_member"]
            assert attempts["update"].status_code == 403
            assert attempts["import update"].status_code == 422
            assert fields_of(attempts["import update"]) == ["rows.2.id"]
    current = (await service.get(activity["id"])).json()
    assert current["version"] == 1
    assert current["title"] == activity["title"]
    assert (await service.get(deleted["id"])).json()["deleted"] is True
    denied = [r for r in await service.audit_rows(activity["id"]) if r.outcome == "denied"]
    assert len(denied) >= 3 * len(intruders) - 3


async def test_a_deleted_activity_of_another_member_looks_missing(service: Service) -> None:
    activity = await service.create("MY")
    await service.client.delete(f"/v1/activities/{activity['id']}", headers=service.tokens("MY"))
    hidden = await service.get(activity["id"], headers=service.tokens("TH"))
    missing = await service.get(str(uuid4()), headers=service.tokens("TH"))
    assert hidden.status_code == missing.status_code == 404
    strip = {"instance"}
    assert {k: v for k, v in hidden.json().items() if k not in strip} == {
        k: v for k, v in missing.json().items() if k not in strip
    }
    hidden_history = await service.client.get(
        f"/v1/activities/{activity['id']}/history", headers=service.tokens("TH")
    )
    assert hidden_history.status_code == 404
    for staff in (
        service.tokens("MY"),
        service.tokens.co_chair(),
        service.tokens.ops(),
        service.tokens.admin(),
    ):
        seen = await service.get(activity["id"], headers=staff)
        assert seen.status_code == 200
        assert seen.json()["deleted"] is True


# --- delete, restore, history -----------------------------------------------------------------


async def test_soft_delete_and_restore(service: Service) -> None:
    activity = await service.create("MY", tags=["soft delete probe"])
    url = f"/v1/activities/{activity['id']}"
    mine = service.tokens("MY")

    async def listed(headers: dict[str, str], **params: Any) -> list[str]:
        response = await service.client.get(
            "/v1/activities", params={"tag": "soft delete probe", **params}, headers=headers
        )
        return [a["id"] for a in response.json()["items"]]

    stale = await service.client.delete(url, headers={**mine, "If-Match": '"v9"'})
    assert stale.status_code == 412
    deleted = await service.client.delete(url, headers={**mine, "If-Match": '"v1"'})
    assert deleted.status_code == 200
    assert deleted.json()["deleted"] is True
    assert deleted.json()["version"] == 2
    assert (await service.client.delete(url, headers=mine)).status_code == 409
    assert await listed(mine) == []
    assert await listed(mine, include_deleted="true") == [activity["id"]]
    assert await listed(service.tokens("TH"), include_deleted="true") == []
    assert await listed(service.tokens.ops(), include_deleted="true") == [activity["id"]]
    edit = await service.patch(activity["id"], {"title": "Edited while deleted"}, version=2)
    assert edit.status_code == 409

    restored = await service.client.post(f"{url}/restore", headers=mine)
    assert restored.status_code == 200
    assert restored.json()["deleted"] is False
    assert restored.headers["ETag"] == '"v3"'
    assert (await service.client.post(f"{url}/restore", headers=mine)).status_code == 409
    assert await listed(service.tokens("TH")) == [activity["id"]]


async def test_history_keeps_every_version_with_who_when_and_what(service: Service) -> None:
    activity = await service.create("MY", status="ongoing", actual_end=None)
    activity_id = activity["id"]
    await service.patch(
        activity_id, {"status": "completed", "actual_end": PAST.isoformat()}, version=1
    )
    await service.patch(activity_id, {"tags": ["biometrics"]}, version=2)
    await service.client.delete(f"/v1/activities/{activity_id}", headers=service.tokens.admin())
    await service.client.post(f"/v1/activities/{activity_id}/restore", headers=service.tokens("MY"))

    response = await service.client.get(
        f"/v1/activities/{activity_id}/history",
        params={"page_size": 3},
        headers=service.tokens("TH"),
    )
    assert response.status_code == 200
    first_page = response.json()
    rest = await service.client.get(
        f"/v1/activities/{activity_id}/history",
        params={"page_size": 3, "cursor": first_page["next_cursor"]},
        headers=service.tokens("TH"),
    )
    versions = first_page["items"] + rest.json()["items"]
    assert rest.json()["next_cursor"] is None
    assert [(v["version"], v["action"]) for v in versions] == [
        (1, "created"),
        (2, "status_changed"),
        (3, "updated"),
        (4, "deleted"),
        (5, "restored"),
    ]
    assert versions[1]["changes"] == {
        "status": {"from": "ongoing", "to": "completed"},
        "actual_end": {"from": None, "to": PAST.isoformat()},
    }
    assert versions[1]["changed_fields"] == ["status", "actual_end"]
    assert versions[2]["changes"]["tags"]["to"] == ["biometrics"]
    assert versions[0]["actor"]["member_id"] == "MY"
    assert versions[3]["actor"]["subject"] == "platform-admin"
    assert versions[3]["snapshot"]["deleted"] is True
    assert versions[2]["snapshot"]["version"] == 3
    assert all(v["at"].endswith(("Z", "+00:00")) for v in versions)
    audit = await service.audit_rows(activity_id)
    assert [r.action for r in audit if r.outcome == "success"] == [
        "activity.create",
        "activity.update",
        "activity.update",
        "activity.delete",
        "activity.restore",
    ]


# --- list -------------------------------------------------------------------------------------


async def test_list_filters_and_pagination(service: Service) -> None:
    marker = f"filter probe {uuid4().hex[:6]}"
    early = PAST - timedelta(days=400)
    created = [
        await service.create(
            "KH",
            items=[15, 16],
            type="training",
            status="completed",
            tags=[marker, "biometrics"],
            countries=["KH"],
            planned_start=early.isoformat(),
            planned_end=early.isoformat(),
            actual_start=early.isoformat(),
            actual_end=early.isoformat(),
        ),
        await service.create(
            "KH",
            items=[9],
            type="public_information_campaign",
            status="ongoing",
            tags=[marker],
            title=f"Digital literacy campaign {marker}",
            participants=[{"member_id": "UNHCR", "role": "funder"}],
            actual_end=None,
        ),
        await service.create(
            "VN",
            items=[11],
            type="meeting",
            status="planned",
            tags=[marker],
            participants=[{"member_id": "KH", "role": "participant"}],
            planned_start=TODAY.isoformat(),
            planned_end=(TODAY + timedelta(days=2)).isoformat(),
            actual_start=None,
            actual_end=None,
        ),
    ]
    training, campaign, meeting = (a["id"] for a in created)
    headers = service.tokens.co_chair()

    async def ids(**params: Any) -> list[str]:
        response = await service.client.get(
            "/v1/activities", params={"tag": marker, **params}, headers=headers
        )
        assert response.status_code == 200, response.text
        return [a["id"] for a in response.json()["items"]]

    assert await ids() == [meeting, campaign, training], "newest first"
    assert await ids(item=16) == [training]
    assert await ids(area=5) == [training]
    assert await ids(area=3) == [campaign]
    assert await ids(member="KH") == [meeting, campaign, training]
    assert await ids(member="UNHCR") == [campaign]
    assert await ids(lead_member="VN") == [meeting]
    assert await ids(status="ongoing") == [campaign]
    assert await ids(type="training") == [training]
    assert await ids(country="kh") == [training]
    assert await ids(tag="Biometrics", q=marker) == [training]
    assert await ids(q="LITERACY CAMPAIGN") == [campaign]
    assert await ids(date_to=(early + timedelta(days=1)).isoformat()) == [training]
    assert await ids(date_from=TODAY.isoformat()) == [meeting]
    assert await ids(date_from=PAST.isoformat(), date_to=PAST.isoformat()) == [campaign]

    pages: list[str] = []
    cursor: str | None = None
    for _ in range(5):
        params: dict[str, Any] = {"tag": marker, "page_size": 1}
        if cursor:
            params["cursor"] = cursor
        page = (await service.client.get("/v1/activities", params=params, headers=headers)).json()
        pages += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [meeting, campaign, training]


async def test_member_role_tokens_of_co_chairs_write_what_they_lead(service: Service) -> None:
    as_co_chair = service.tokens("ID", roles=[Role.co_chair], subject="indonesian-co-chair")
    created = await service.client.post("/v1/activities", json=activity_body(), headers=as_co_chair)
    assert created.status_code == 201
    assert created.json()["lead_member"] == "ID"


async def test_codes_are_accepted_in_any_letter_case(service: Service) -> None:
    activity = await service.create(
        "MY", participants=[{"member_id": " th ", "role": "co_lead"}], countries=["kh", "KH"]
    )
    assert activity["participants"][1] == {"member_id": "TH", "role": "co_lead"}
    assert activity["countries"] == ["KH"]
    listed = await service.client.get(
        "/v1/activities",
        params={"member": "th", "q": activity["title"]},
        headers=service.tokens.ops(),
    )
    assert [a["id"] for a in listed.json()["items"]] == [activity["id"]]


async def test_an_oversized_body_is_refused_before_it_is_read(service: Service) -> None:
    huge = activity_body(description="x" * (service.settings.max_request_bytes + 1))
    response = await service.client.post("/v1/activities", json=huge, headers=service.tokens("MY"))
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM
