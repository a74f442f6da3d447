"""One-click acknowledge links: signed, expiring, single use, only for co-chairs."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from typing import Any

import pytest_asyncio
from bali_common.links import ACKNOWLEDGE_LINK_PURPOSE, mint_link_token
from consultation_testkit import Service, add_to_directory, member_snapshot
from pydantic import SecretStr

ID_FOCAL_POINT = "duty.officer@kemlu.go.id"
PH_FOCAL_POINT = "desk@dfa.gov.ph"
HTML = {"Accept": "text/html"}
JSON = {"Accept": "application/json"}


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def service(service: Service) -> Service:
    """The module's service, with co-chairs ID and AU and members MY, TH, PH in its directory."""
    await add_to_directory(
        service,
        [
            member_snapshot("ID", co_chair=True, email=ID_FOCAL_POINT),
            member_snapshot("AU", co_chair=True),
            member_snapshot("MY"),
            member_snapshot("TH"),
            member_snapshot("PH", email=PH_FOCAL_POINT),
        ],
    )
    return service


def link(
    service: Service,
    alert_id: str,
    *,
    recipient: str = ID_FOCAL_POINT,
    expires_in: timedelta = timedelta(hours=24),
    purpose: str = ACKNOWLEDGE_LINK_PURPOSE,
    secret: SecretStr | None = None,
) -> str:
    """Minted as the notifications service does for each co-chair recipient of an email."""
    expires_at: datetime = service.clock() + expires_in
    return mint_link_token(
        secret or service.settings.link_signing_secret,
        purpose=purpose,
        subject=alert_id,
        recipient=recipient,
        expires_at=expires_at,
    )


async def open_link(service: Service, alert_id: str, token: str) -> Any:
    return await service.client.get(
        f"/v1/alerts/{alert_id}/acknowledge", params={"token": token}, headers=HTML
    )


async def press_button(
    service: Service, alert_id: str, token: str, headers: dict[str, str] = HTML
) -> Any:
    return await service.client.post(
        f"/v1/alerts/{alert_id}/acknowledge", data={"token": token}, headers=headers
    )


async def test_opening_the_link_shows_a_page_whose_form_alone_acknowledges(
    service: Service,
) -> None:
    alert = await service.raise_alert(sensitivity="restricted")
    page = await open_link(service, alert["id"], link(service, alert["id"]))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "<form method='post'" in page.text
    assert alert["title"] in page.text
    assert (await service.get(alert["id"]))["status"] == "raised"
    action = re.search(r"action='([^']+)'", page.text)
    hidden = re.search(r"name='token' value='([^']+)'", page.text)
    assert action is not None
    assert hidden is not None
    submitted = await service.client.post(
        page.url.join(action.group(1)), data={"token": hidden.group(1)}, headers=HTML
    )
    assert submitted.status_code == 200, "the page's own form acknowledges"
    assert (await service.get(alert["id"]))["status"] == "acknowledged"


async def test_pressing_the_button_acknowledges_on_behalf_of_the_co_chair(
    service: Service,
) -> None:
    alert = await service.raise_alert()
    service.clock.advance(minutes=4)
    response = await press_button(service, alert["id"], link(service, alert["id"]))
    assert response.status_code == 200, response.text
    assert "Alert acknowledged" in response.text
    acknowledged = await service.get(alert["id"])
    assert acknowledged["status"] == "acknowledged"
    assert acknowledged["acknowledged_by"]["member_id"] == "ID"
    assert acknowledged["acknowledged_by"]["name"] == "Duty officer ID"
    assert acknowledged["response_times"]["seconds_to_acknowledge"] == 240.0
    timeline = await service.timeline(alert["id"])
    assert timeline[-1]["details"] == {"via_link": True}
    assert timeline[-1]["actor"]["subject"] == f"link:{ID_FOCAL_POINT}"


async def test_co_chair_member_id_as_recipient_is_accepted_and_json_is_answered_on_request(
    service: Service,
) -> None:
    alert = await service.raise_alert()
    token = link(service, alert["id"], recipient="AU")
    response = await service.client.post(
        f"/v1/alerts/{alert['id']}/acknowledge", params={"token": token}, headers=JSON
    )
    assert response.status_code == 200
    assert response.json()["acknowledged_by"]["member_id"] == "AU"


async def test_a_used_link_is_refused_and_the_alert_acknowledged_once(service: Service) -> None:
    alert = await service.raise_alert()
    token = link(service, alert["id"])
    assert (await press_button(service, alert["id"], token)).status_code == 200
    for attempt in (
        press_button(service, alert["id"], token),
        open_link(service, alert["id"], token),
    ):
        reused = await attempt
        assert reused.status_code == 409
        assert "already been used" in reused.text
    reused_json = await press_button(service, alert["id"], token, headers=JSON)
    assert reused_json.json()["type"].endswith("/link-used")
    kinds = [e["kind"] for e in await service.timeline(alert["id"])]
    assert kinds.count("acknowledged") == 1


async def test_one_link_pressed_concurrently_acknowledges_once(service: Service) -> None:
    alert = await service.raise_alert()
    token = link(service, alert["id"])
    responses = await asyncio.gather(
        *(press_button(service, alert["id"], token, headers=JSON) for _ in range(5))
    )
    assert sorted(r.status_code for r in responses) == [200, 409, 409, 409, 409]
    kinds = [e["kind"] for e in await service.timeline(alert["id"])]
    assert kinds.count("acknowledged") == 1


async def test_an_expired_link_is_refused(service: Service) -> None:
    alert = await service.raise_alert()
    token = link(service, alert["id"], expires_in=timedelta(hours=1))
    service.clock.advance(hours=1, seconds=1)
    assert (await open_link(service, alert["id"], token)).status_code == 410
    refused = await press_button(service, alert["id"], token)
    assert refused.status_code == 410
    assert "expired" in refused.text
    assert (await service.get(alert["id"]))["status"] == "raised"


def _flip(text: str, index: int) -> str:
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1 :]


async def test_tampered_or_misdirected_links_are_refused(service: Service) -> None:
    alert = await service.raise_alert()
    other = await service.raise_alert()
    genuine = link(service, alert["id"])
    body, _, signature = genuine.partition(".")
    forged_claims = link(service, alert["id"], recipient="AU").partition(".")[0]
    tampered = {
        "signature changed": f"{body}.{_flip(signature, 5)}",
        "claims changed": f"{forged_claims}.{signature}",
        "body changed": f"{_flip(body, 10)}.{signature}",
        "no signature": body,
        "non-ASCII signature": f"{body}.{signature[:-1]}é",
        "superscript in signature": f"{body}.{signature}²",
        "garbage": "not-a-token",
        "other secret": link(service, alert["id"], secret=SecretStr("someone-else")),
        "other purpose": link(service, alert["id"], purpose="report.download"),
        "other alert": link(service, other["id"]),
        "non co-chair recipient": link(service, alert["id"], recipient=PH_FOCAL_POINT),
        "unknown recipient": link(service, alert["id"], recipient="stranger@example.org"),
    }
    for name, token in tampered.items():
        for attempt in (open_link, press_button):
            response = await attempt(service, alert["id"], token)
            assert response.status_code == 403, (name, attempt.__name__, response.text)
        by_query = await service.client.post(
            f"/v1/alerts/{alert['id']}/acknowledge", params={"token": token}, headers=JSON
        )
        assert by_query.status_code == 403, (name, by_query.text)
        assert by_query.headers["content-type"] == "application/problem+json", name
    for alert_id in (alert["id"], other["id"]):
        assert (await service.get(alert_id))["status"] == "raised"
    assert (await press_button(service, alert["id"], genuine)).status_code == 200


async def test_link_for_an_already_acknowledged_alert_says_who_and_stays_unused(
    service: Service,
) -> None:
    alert = await service.raise_alert()
    token = link(service, alert["id"])
    await service.step(alert["id"], "acknowledge", headers=service.auth.co_chair("AU"))
    page = await open_link(service, alert["id"], token)
    assert page.status_code == 200
    assert "Already acknowledged by" in page.text
    assert "<form" not in page.text
    pressed = await press_button(service, alert["id"], token)
    assert pressed.status_code == 409
    assert "Already acknowledged by" in pressed.text
