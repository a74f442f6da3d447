"""Raising over HTTP: one alert per open situation, idempotent retries, situation updates."""

from __future__ import annotations

import asyncio

from bali_common.auth import Role
from consultation_testkit import Service, alert_body


async def test_raising_the_same_situation_again_adds_an_update_to_the_open_alert(
    service: Service,
) -> None:
    body = alert_body(dedup_key="rote-2026-11-28")
    first = await service.client.post("/v1/alerts", json=body, headers=service.auth("MY"))
    assert first.status_code == 201
    again = {**body, "description": "Now three boats.", "severity": "Severe"}
    second = await service.client.post("/v1/alerts", json=again, headers=service.auth("MY"))
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["version"] == 2
    assert second.json()["severity"] == "Extreme", "a repeated raise does not rewrite fields"
    timeline = await service.timeline(first.json()["id"])
    assert timeline[-1]["kind"] == "updated"
    assert timeline[-1]["details"]["repeated_raise"] is True
    assert timeline[-1]["details"]["text"] == "Now three boats."
    assert timeline[-1]["details"]["reported"]["severity"] == "Severe"
    assert await service.staged_events(first.json()["id"]) == ["alert.raised", "alert.updated"]

    other_member = await service.client.post("/v1/alerts", json=body, headers=service.auth("TH"))
    assert other_member.status_code == 201, "the dedup key is per raising member"
    assert other_member.json()["id"] != first.json()["id"]

    await service.step(first.json()["id"], "withdraw", headers=service.auth("MY"))
    after_close = await service.client.post("/v1/alerts", json=body, headers=service.auth("MY"))
    assert after_close.status_code == 201, "only an open alert absorbs a repeated raise"
    assert after_close.json()["id"] != first.json()["id"]

    reopen = await service.step(first.json()["id"], "reopen", headers=service.auth("MY"))
    assert reopen.status_code == 409
    assert reopen.json()["type"].endswith("/dedup-key-open")


async def test_concurrent_raises_of_one_situation_open_a_single_alert(service: Service) -> None:
    body = alert_body()
    responses = await asyncio.gather(
        *(
            service.client.post("/v1/alerts", json=body, headers=service.auth("MY"))
            for _ in range(6)
        )
    )
    assert sorted(r.status_code for r in responses) == [200] * 5 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    timeline = await service.timeline(responses[0].json()["id"])
    assert [e["kind"] for e in timeline] == ["raised"] + ["updated"] * 5


async def test_idempotency_key_replays_the_raise_instead_of_raising_twice(
    service: Service,
) -> None:
    body = alert_body()
    headers = {**service.auth("MY"), "Idempotency-Key": "raise-once-1"}
    first = await service.client.post("/v1/alerts", json=body, headers=headers)
    replay = await service.client.post("/v1/alerts", json=body, headers=headers)
    assert first.status_code == replay.status_code == 201
    assert replay.json() == first.json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert len(await service.timeline(first.json()["id"])) == 1
    other_body = await service.client.post(
        "/v1/alerts", json={**body, "title": "Different"}, headers=headers
    )
    assert other_body.status_code == 422


async def test_situation_update_that_changes_fields_needs_a_fresh_if_match(
    service: Service,
) -> None:
    alert = await service.raise_alert(severity="Moderate")
    url = f"/v1/alerts/{alert['id']}/updates"
    change = {"text": "Aerial survey", "severity": "Extreme", "people_affected": {"estimate": 160}}
    missing = await service.client.post(url, json=change, headers=service.auth("MY"))
    assert missing.status_code == 428
    stale = await service.client.post(
        url, json=change, headers={**service.auth("MY"), "If-Match": '"v0"'}
    )
    assert stale.status_code == 412
    fresh = await service.client.post(
        url, json=change, headers={**service.auth("MY"), "If-Match": '"v1"'}
    )
    assert fresh.status_code == 200, fresh.text
    assert fresh.json()["severity"] == "Extreme"
    assert fresh.json()["people_affected"] == {"estimate": 160, "women": None, "children": None}
    same_again = await service.client.post(
        url,
        json={"text": "Confirmed", "severity": "Extreme", "location": alert["location"]},
        headers={**service.auth("MY"), "If-Match": '"v2"'},
    )
    assert same_again.status_code == 200
    text_only = await service.client.post(
        url, json={"text": "No change"}, headers=service.auth("MY")
    )
    assert text_only.status_code == 200, "text alone needs no If-Match"
    timeline = await service.timeline(alert["id"])
    assert timeline[1]["details"]["changes"]["severity"] == {"from": "Moderate", "to": "Extreme"}
    assert timeline[2]["details"] == {"text": "Confirmed", "changes": {}}, "nothing differed"
    assert timeline[3]["details"] == {"text": "No change", "changes": {}}


async def test_who_may_post_updates_and_change_fields(service: Service) -> None:
    alert = await service.raise_alert(affected_members=["TH"])
    url = f"/v1/alerts/{alert['id']}/updates"
    affected = await service.client.post(url, json={"text": "Seen"}, headers=service.auth("TH"))
    assert affected.status_code == 200
    affected_change = await service.client.post(
        url,
        json={"text": "Worse", "severity": "Severe"},
        headers={**service.auth("TH"), "If-Match": '"v2"'},
    )
    assert affected_change.status_code == 403
    outsider = await service.client.post(url, json={"text": "Hi"}, headers=service.auth("PH"))
    assert outsider.status_code == 403
    co_chair = await service.client.post(
        url,
        json={"text": "Co-chairs reassess", "urgency": "Expected"},
        headers={**service.auth.co_chair(), "If-Match": '"v2"'},
    )
    assert co_chair.status_code == 200


async def test_raising_needs_a_member_token_and_valid_fields(service: Service) -> None:
    ops = service.auth(None, (Role.ops,), subject="ops-1")
    assert (
        await service.client.post("/v1/alerts", json=alert_body(), headers=ops)
    ).status_code == 403
    bad = alert_body(
        severity="Catastrophic",
        location={"place_names": ["Sea"], "polygon": [{"lat": 1, "lon": 2}, {"lat": 1, "lon": 3}]},
        title="x" * 161,
        status="resolved",
    )
    response = await service.client.post("/v1/alerts", json=bad, headers=service.auth("MY"))
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert {"body.severity", "body.title", "body.status"} <= fields
    assert any(f.startswith("body.location") for f in fields)
    control = alert_body(description="bell \x07 in text")
    refused = await service.client.post("/v1/alerts", json=control, headers=service.auth("MY"))
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "body.description"
