"""Subscriptions API: validated, authorised, versioned; webhook secrets rotate with an overlap."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest_asyncio
from bali_common.auth import Role
from notification_harness import Harness, ServiceStarter, alert_raised, subscribe, unsubscribe
from notification_receivers import Canary, WebhookReceiver
from standardwebhooks import Webhook


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def harness(notifications: ServiceStarter) -> AsyncIterator[Harness]:
    async with notifications.started("subscriptions") as harness:
        yield harness


async def test_subscription_api_validates_authorizes_and_versions(
    harness: Harness, webhook_receiver: WebhookReceiver
) -> None:
    url = webhook_receiver.endpoint().url
    ph = harness.tokens("PH")
    invalid = [
        ({"name": "x", "channel": "webhook"}, "body.url"),
        ({"name": "x", "channel": "email"}, "body.email"),
        ({"name": "x", "channel": "email", "email": "not-an-address"}, "body.email"),
        (
            {"name": "x", "channel": "webhook", "url": url, "event_types": ["nope"]},
            "body.event_types",
        ),
        (
            {"name": "x", "channel": "webhook", "url": url, "item_numbers": [99]},
            "body.item_numbers",
        ),
        ({"name": "x", "channel": "webhook", "url": url, "area_numbers": [9]}, "body.area_numbers"),
        (
            {"name": "x", "channel": "webhook", "url": url, "severities": ["Huge"]},
            "body.severities.0",
        ),
        ({"name": "x", "channel": "inbox", "url": url}, "body.channel"),
        ({"name": "x", "channel": "webhook", "url": "https://example.invalid/"}, "body.url"),
        ({"name": "x", "channel": "webhook", "url": url, "id": "mine"}, "body.id"),
    ]
    for body, field in invalid:
        response = await harness.client.post("/v1/subscriptions", json=body, headers=ph)
        assert response.status_code == 422, (body, response.text)
        assert field in [e["field"] for e in response.json()["errors"]], (body, response.text)

    foreign = await harness.client.post(
        "/v1/subscriptions",
        json={"name": "x", "channel": "inbox", "member_id": "AU"},
        headers=ph,
    )
    assert foreign.status_code == 403
    no_member = await harness.client.post(
        "/v1/subscriptions",
        json={"name": "x", "channel": "inbox"},
        headers=harness.tokens(None, [Role.ops], subject="ops-2"),
    )
    assert no_member.status_code == 403

    body = {"name": "idempotent", "channel": "webhook", "url": url, "severities": ["Severe"]}
    first = await harness.client.post(
        "/v1/subscriptions", json=body, headers={**ph, "Idempotency-Key": "k-1"}
    )
    again = await harness.client.post(
        "/v1/subscriptions", json=body, headers={**ph, "Idempotency-Key": "k-1"}
    )
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    sub_id = first.json()["id"]

    for other in (harness.tokens("IOM"), harness.tokens.co_chair("AU")):
        assert (
            await harness.client.get(f"/v1/subscriptions/{sub_id}", headers=other)
        ).status_code == 404
        assert (
            await harness.client.patch(
                f"/v1/subscriptions/{sub_id}",
                json={"name": "mine"},
                headers={**other, "If-Match": '"v1"'},
            )
        ).status_code == 404
    admin = await harness.client.get(f"/v1/subscriptions/{sub_id}", headers=harness.tokens.admin())
    assert admin.status_code == 200
    assert admin.headers["ETag"] == '"v1"'

    unconditional = await harness.client.patch(
        f"/v1/subscriptions/{sub_id}", json={"severities": ["Extreme"]}, headers=ph
    )
    assert unconditional.status_code == 428
    updated = await harness.client.patch(
        f"/v1/subscriptions/{sub_id}",
        json={"severities": ["Extreme"], "enabled": False},
        headers={**ph, "If-Match": '"v1"'},
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["severities"] == ["Extreme"]
    assert updated.json()["enabled"] is False
    assert updated.headers["ETag"] == '"v2"'
    stale = await harness.client.patch(
        f"/v1/subscriptions/{sub_id}", json={"name": "late"}, headers={**ph, "If-Match": '"v1"'}
    )
    assert stale.status_code == 412
    server_owned = await harness.client.patch(
        f"/v1/subscriptions/{sub_id}",
        json={"member_id": "AU"},
        headers={**ph, "If-Match": '"v2"'},
    )
    assert server_owned.status_code == 422

    listed = await harness.client.get("/v1/subscriptions?channel=webhook", headers=ph)
    assert sub_id in [s["id"] for s in listed.json()["items"]]
    assert {s["member_id"] for s in listed.json()["items"]} == {"PH"}
    await unsubscribe(harness, "PH", sub_id)
    gone = await harness.client.get(f"/v1/subscriptions/{sub_id}", headers=ph)
    assert gone.status_code == 404


async def test_rotated_secret_signs_beside_the_old_one_during_the_overlap(
    harness: Harness, webhook_receiver: WebhookReceiver
) -> None:
    sub_id, endpoint = await subscribe(harness, "PH", webhook_receiver, member_ids=["PH"])
    assert endpoint is not None
    old_secret = endpoint.secrets[0]
    rotated = await harness.client.post(
        f"/v1/subscriptions/{sub_id}/rotate-secret", headers=harness.tokens("PH")
    )
    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret != old_secret
    assert rotated.json()["previous_secret_expires_at"] is not None
    payload = alert_raised(raised_by="PH", affected=[])
    event = await harness.publish(payload, subject=payload.alert.alert_id)
    await harness.planned(event, 6)
    await harness.dispatch()
    [hook] = endpoint.requests
    assert len(hook.headers["webhook-signature"].split(" ")) == 2
    assert Webhook(old_secret).verify(hook.body, hook.headers)
    assert Webhook(new_secret).verify(hook.body, hook.headers)
    shown = await harness.client.get(f"/v1/subscriptions/{sub_id}", headers=harness.tokens("PH"))
    assert "secret" not in shown.json()
    assert "secrets" not in shown.json()
    await unsubscribe(harness, "PH", sub_id)


async def test_a_target_changes_only_to_one_its_channel_can_use(
    harness: Harness, webhook_receiver: WebhookReceiver, canary: Canary
) -> None:
    ph = harness.tokens("PH")
    hook_id, _ = await subscribe(harness, "PH", webhook_receiver)
    mail_id, _ = await subscribe(harness, "PH", channel="email", email="paolo@ph.example.org")

    async def change(subscription_id: str, body: dict[str, str], version: int) -> httpx.Response:
        return await harness.client.patch(
            f"/v1/subscriptions/{subscription_id}",
            json=body,
            headers={**ph, "If-Match": f'"v{version}"'},
        )

    for body, field in [
        ({"url": f"https://127.0.0.1:{canary.port}/hook"}, "body.url"),
        ({"email": "paolo@ph.example.org"}, "body.email"),
    ]:
        refused = await change(hook_id, body, 1)
        assert refused.status_code == 422, refused.text
        assert [e["field"] for e in refused.json()["errors"]] == [field]
    moved_to = webhook_receiver.endpoint().url
    moved = await change(hook_id, {"url": moved_to}, 1)
    assert moved.status_code == 200, moved.text
    assert (moved.json()["url"], moved.headers["ETag"]) == (moved_to, '"v2"')
    stale = await change(hook_id, {"url": webhook_receiver.endpoint().url}, 1)
    assert stale.status_code == 412, "checked first, then refused by the version under lock"

    no_url = await change(mail_id, {"url": moved_to}, 1)
    assert [e["field"] for e in no_url.json()["errors"]] == ["body.url"]
    renamed = await change(mail_id, {"email": "Paolo.Reyes@PH.example.org"}, 1)
    assert renamed.json()["email"] == "paolo.reyes@ph.example.org"
    missing = await change("no-such-subscription", {"url": moved_to}, 1)
    assert missing.status_code == 404
    assert missing.json()["type"].endswith("/not-found")
    assert canary.connections == 0
    await unsubscribe(harness, "PH", hook_id, mail_id)
