"""The visibility rule in notifications: inbox reads and stream, deliveries, subscriptions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
from bali_common.events.alerts import AlertRaised, Sensitivity
from bali_devkit.testing.plugin import serving
from bali_notifications import audience
from bali_notifications.deliveries.models import Delivery
from bali_notifications.planning import AlertAffectedMember, AlertState
from notification_harness import Harness, ServiceStarter, alert_raised, reload, subscribe
from notification_receivers import WebhookReceiver, free_port
from sqlalchemy import delete
from sqlmodel import col

# The standard directory: AU and ID co-chairs; PH, MY and IOM members.
# Told of a restricted alert PH raised about MY: AU's and ID's focal points and inboxes, MY's.
TOLD = 7


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def harness(notifications: ServiceStarter) -> AsyncIterator[Harness]:
    async with notifications.started("visibility", inbox_stream_heartbeat_s=0.5) as harness:
        yield harness


def restricted(title: str = "Restricted: names of victims") -> AlertRaised:
    return alert_raised(
        sensitivity=Sensitivity.restricted, raised_by="PH", affected=["MY"], title=title
    )


async def told(harness: Harness, payload: AlertRaised, count: int = TOLD) -> list[Delivery]:
    event = await harness.publish(payload, subject=payload.alert.alert_id)
    planned = await harness.planned(event, count)
    await harness.dispatch()
    return planned


async def inbox(harness: Harness, headers: dict[str, str]) -> dict[str, Any]:
    response = await harness.client.get("/v1/inbox?page_size=200", headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def alert_ids(page: dict[str, Any]) -> set[str]:
    return {item["alert_id"] for item in page["items"]}


async def test_a_co_chair_members_inbox_shows_restricted_alerts_to_its_acting_co_chairs_only(
    harness: Harness,
) -> None:
    """The item is in AU's inbox because AU is a co-chair; AU's plain users are not."""
    payload = restricted()
    await told(harness, payload)
    alert_id = payload.alert.alert_id
    plain = harness.tokens("AU", subject="au-desk")
    co_chair = harness.tokens.co_chair("AU")
    unread_before = (await inbox(harness, plain))["unread_count"]

    assert alert_id not in alert_ids(await inbox(harness, plain))
    shown = await inbox(harness, co_chair)
    assert alert_id in alert_ids(shown)
    assert alert_id in alert_ids(await inbox(harness, harness.tokens("MY")))
    assert alert_id not in alert_ids(await inbox(harness, harness.tokens.co_chair("NZ")))
    [item] = [i for i in shown["items"] if i["alert_id"] == alert_id]
    hidden = await harness.client.patch(
        f"/v1/inbox/{item['id']}", json={"read": True}, headers=plain
    )
    assert hidden.status_code == 404
    assert (await inbox(harness, plain))["unread_count"] == unread_before
    marked = await harness.client.patch(
        f"/v1/inbox/{item['id']}", json={"read": True}, headers=co_chair
    )
    assert marked.status_code == 200


async def test_the_stream_sends_each_reader_what_the_rule_lets_them_see(harness: Harness) -> None:
    """Live and on catch-up from the start (`Last-Event-ID: 0`): a plain AU user's stream
    skips the restricted item its co-chairs' stream carries."""
    port = free_port()
    secret, public = restricted(), alert_raised(raised_by="PH", affected=["MY"])
    plain = harness.tokens("AU", subject="au-desk")
    async with (
        serving(harness.app, port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http,
        http.stream("GET", "/v1/inbox/stream", headers=plain) as live_plain,
        http.stream("GET", "/v1/inbox/stream", headers=harness.tokens.co_chair("AU")) as live_cc,
    ):
        await told(harness, secret)
        await told(harness, public)
        public_id = public.alert.alert_id
        seen_plain = await _items_until(live_plain, public_id)
        seen_cc = await _items_until(live_cc, public_id)
        assert secret.alert.alert_id not in seen_plain
        assert secret.alert.alert_id in seen_cc
        async with http.stream(
            "GET", "/v1/inbox/stream", headers={**plain, "Last-Event-ID": "0"}
        ) as resumed:
            assert secret.alert.alert_id not in await _items_until(resumed, public_id)


async def _items_until(stream: httpx.Response, alert_id: str) -> list[str]:
    """The alert ids of the stream's items, up to the first about `alert_id`."""

    async def read() -> list[str]:
        seen: list[str] = []
        data = None
        async for line in stream.aiter_lines():
            if line.startswith("data:"):
                data = json.loads(line.removeprefix("data:"))
            elif not line and data is not None:
                seen.append(data["alert_id"])
                if data["alert_id"] == alert_id:
                    return seen
                data = None
        raise AssertionError("stream ended")

    return await asyncio.wait_for(read(), 20)


async def test_deliveries_of_a_restricted_alert_are_listed_to_those_the_rule_lets_see_it(
    harness: Harness,
) -> None:
    payload = restricted()
    await told(harness, payload)
    query = f"/v1/deliveries?alert_id={payload.alert.alert_id}&page_size=50"

    async def members_listed(headers: dict[str, str]) -> set[str]:
        response = await harness.client.get(query, headers=headers)
        assert response.status_code == 200, response.text
        assert payload.alert.title not in response.text, "a delivery carries no alert content"
        return {item["member_id"] for item in response.json()["items"]}

    assert await members_listed(harness.tokens("AU", subject="au-desk")) == set()
    assert await members_listed(harness.tokens.co_chair("AU")) == {"AU"}
    assert await members_listed(harness.tokens("MY")) == {"MY"}
    assert await members_listed(harness.tokens.ops()) == {"AU", "ID", "MY"}
    deliveries = await harness.deliveries(alert_id=payload.alert.alert_id)
    au_delivery = next(d for d in deliveries if d.member_id == "AU")
    hidden = await harness.client.get(
        f"/v1/deliveries/{au_delivery.id}", headers=harness.tokens("AU", subject="au-desk")
    )
    assert hidden.status_code == 404


async def test_whoever_sets_a_subscriptions_target_decides_what_may_be_sent_there(
    harness: Harness, webhook_receiver: WebhookReceiver
) -> None:
    """Made by AU's co-chair, AU's webhook receives restricted alerts; pointed elsewhere by a
    plain AU user, it does not, not even a delivery planned before the change."""
    subscription_id, hook = await subscribe(
        harness, "AU", webhook_receiver, headers=harness.tokens.co_chair("AU")
    )
    assert hook is not None
    path = f"/v1/subscriptions/{subscription_id}"
    shown = await harness.client.get(path, headers=harness.tokens("AU"))
    assert shown.json()["for_co_chairs"] is True

    payload = restricted()
    event = await harness.publish(payload, subject=payload.alert.alert_id)
    [planned] = [d for d in await harness.planned(event, TOLD + 1) if d.channel == "webhook"]
    other = webhook_receiver.endpoint()
    retargeted = await harness.client.patch(
        path,
        json={"url": other.url},
        headers={**harness.tokens("AU", subject="au-desk"), "If-Match": shown.headers["ETag"]},
    )
    assert retargeted.status_code == 200, retargeted.text
    assert retargeted.json()["for_co_chairs"] is False
    await harness.dispatch()
    assert other.requests == []
    assert hook.requests == []
    refused = await reload(harness, planned)
    assert (refused.status, refused.attempt_count) == ("failed", 0)
    assert "may no longer see this alert" in (refused.last_error or "")

    later = restricted()
    event = await harness.publish(later, subject=later.alert.alert_id)
    planned_later = await harness.planned(event, TOLD)
    assert subscription_id not in {d.subscription_id for d in planned_later}
    await harness.client.delete(path, headers=harness.tokens("AU"))


async def test_alerts_kept_before_the_rule_are_shown_conservatively_then_as_their_event_says(
    harness: Harness,
) -> None:
    """An alert state without its audience counts as restricted naming nobody: only acting
    co-chairs read its items, until the start-up backfill takes the audience from its event."""
    payload = restricted()
    await told(harness, payload)
    alert_id = payload.alert.alert_id
    async with harness.runtime.sessions() as session:
        state = await session.get(AlertState, alert_id)
        assert state is not None
        state.sensitivity = None
        state.raised_by_member = None
        session.add(state)
        await session.exec(
            delete(AlertAffectedMember).where(col(AlertAffectedMember.alert_id) == alert_id)
        )
        await session.commit()
    my = harness.tokens("MY")
    assert alert_id not in alert_ids(await inbox(harness, my))
    assert alert_id in alert_ids(await inbox(harness, harness.tokens.co_chair("AU")))

    assert await audience.backfill(harness.runtime.sessions) >= 1
    assert alert_id in alert_ids(await inbox(harness, my))
    assert alert_id not in alert_ids(await inbox(harness, harness.tokens("AU", subject="au-desk")))
    filled = await harness.alert_state(alert_id)
    assert filled is not None
    assert (filled.sensitivity, filled.raised_by_member) == ("restricted", "PH")
