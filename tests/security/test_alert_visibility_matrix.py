"""Every path that shows alert content, for every caller, in consultation and notifications.

The platform (`alert_visibility_platform`): MY raised `restricted` (affects TH), `elsewhere`
(affects PH only) and `public` (affects TH); AU and ID are the co-chairs. The tables below
write the rule out for each caller; every path is checked against them, and no response to a
caller contains the title or text of an alert the caller may not see.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from alert_visibility_platform import (
    ALERTS,
    CALLERS,
    SUBSCRIPTIONS,
    InboxStream,
    Platform,
    focal,
    mail_address,
    platform,
)
from bali_common.auth import Role
from bali_common.links import ACKNOWLEDGE_LINK_PURPOSE, mint_link_token
from bali_devkit.testing.plugin import eventually
from bali_notifications.inbox.models import InboxItem
from sqlmodel import select

__all__ = ["platform"]

MISSING = "00000000-0000-0000-0000-000000000000"
#: Which alerts each caller may see: co-chairs (the role for a member the directory lists as
#: co-chair), the raising member, the affected members, administrators.
SEES = {
    "member AU": {"public"},
    "co_chair AU": set(ALERTS),
    "co_chair TH": {"restricted", "public"},
    "member TH": {"restricted", "public"},
    "member MY": set(ALERTS),
    "member NZ": {"public"},
    "ops RSO": {"public"},
    "admin": set(ALERTS),
}
#: Alerts with an item in the caller's inboxes: member:AU and member:ID hold every alert,
#: member:TH those affecting TH; MY, NZ and the admin have inbox subscriptions of their own.
IN_INBOXES = {
    "member AU": set(ALERTS),
    "co_chair AU": set(ALERTS),
    "co_chair TH": {"restricted", "public"},
    "member TH": {"restricted", "public"},
    "member MY": set(ALERTS),
    "member NZ": {"public"},
    "ops RSO": set(),
    "admin": {"public"},
}
#: What each webhook and email subscription is sent: its member's endpoint, serving the
#: member's co-chairs only when an acting co-chair made it.
SUBSCRIBER_GETS = {
    "au-by-co-chair": set(ALERTS),
    "au-by-member": {"public"},
    "th-by-co-chair": {"restricted", "public"},
    "my-by-member": set(ALERTS),
    "nz-by-member": {"public"},
    "admin-own": {"public"},
    "au-mail-by-member": {"public"},
    "au-mail-by-co-chair": set(ALERTS),
}
_CONVENE = {"convened_for": "2026-11-28T20:00:00+07:00", "participants": ["AU"]}
_OUTREACH = {"reached_by": "AU", "reached": "Someone", "outcome": "Agreed"}
#: Step route -> (body, behind the co_chair role, who may take it beyond the acting co-chairs).
STEPS: dict[str, tuple[dict[str, Any], bool, str]] = {
    "acknowledge": ({}, False, "nobody"),
    "escalate": ({}, True, "nobody"),
    "consultations": (_CONVENE, True, "nobody"),
    "outreach": (_OUTREACH, True, "nobody"),
    "resolve": ({"summary": "Done"}, True, "nobody"),
    "withdraw": ({}, False, "raiser"),
    "reopen": ({}, False, "raiser"),
    "updates": ({"text": "More news"}, False, "named"),
}


def member_of(caller: str) -> str | None:
    return CALLERS[caller][0]


def named(caller: str, alert: str) -> bool:
    """The alert names the caller's member (raised by MY; affects TH, PH, TH)."""
    involved = {"restricted": {"MY", "TH"}, "elsewhere": {"MY", "PH"}, "public": {"MY", "TH"}}
    return member_of(caller) in involved[alert]


def may_take(step: str, caller: str, alert: str) -> bool:
    others = STEPS[step][2]
    return caller == "co_chair AU" or (
        (others == "raiser" and caller == "member MY")
        or (others == "named" and named(caller, alert))
    )


def shows_nothing_hidden(platform: Platform, caller: str, text: str) -> None:
    for hidden in platform.content_of(set(ALERTS) - SEES[caller]):
        assert hidden not in text, (caller, hidden)


# --- consultation -----------------------------------------------------------------------------


@pytest.mark.parametrize("caller", list(CALLERS))
async def test_alert_reads_answer_as_the_rule_says(platform: Platform, caller: str) -> None:
    headers = platform.headers(caller)
    listed = await platform.consultation.get("/v1/alerts?page_size=200", headers=headers)
    assert platform.names({a["id"] for a in listed.json()["items"]}) == SEES[caller]
    shows_nothing_hidden(platform, caller, listed.text)
    for alert in ALERTS:
        for suffix in ("", "/timeline", "/cap.xml"):
            read = await platform.consultation.get(
                f"/v1/alerts/{platform.id_of(alert)}{suffix}", headers=headers
            )
            if alert in SEES[caller]:
                assert read.status_code == 200, (alert, suffix, read.text)
                continue
            absent = await platform.consultation.get(
                f"/v1/alerts/{MISSING}{suffix}", headers=headers
            )
            assert read.status_code == absent.status_code == 404, (alert, suffix)
            assert read.json()["title"] == absent.json()["title"]
            shows_nothing_hidden(platform, caller, read.text)


@pytest.mark.parametrize("caller", list(CALLERS))
async def test_every_step_route_refuses_a_hidden_alert_as_a_missing_one_before_anything_else(
    platform: Platform, caller: str
) -> None:
    """Hidden: the answer for an alert that does not exist (404, or 403 where the route asks
    for the co_chair role first). Visible: 403 unless the caller may take the step, then the
    stale If-Match (412) stops it, so the matrix changes no alert."""
    headers = {**platform.headers(caller), "If-Match": '"v999"'}
    has_role = bool({Role.co_chair, Role.admin} & set(CALLERS[caller][1]))
    for step, (body, role_gated, _) in STEPS.items():
        absent = await platform.consultation.post(
            f"/v1/alerts/{MISSING}/{step}", json=body, headers=headers
        )
        for alert in ALERTS:
            answer = await platform.consultation.post(
                f"/v1/alerts/{platform.id_of(alert)}/{step}", json=body, headers=headers
            )
            if role_gated and not has_role:
                expected = 403
            elif alert not in SEES[caller]:
                expected = 404
            else:
                expected = 412 if may_take(step, caller, alert) else 403
            assert answer.status_code == expected, (step, alert, answer.text)
            if alert not in SEES[caller]:
                assert (answer.status_code, answer.json()["title"]) == (
                    absent.status_code,
                    absent.json()["title"],
                )
            shows_nothing_hidden(platform, caller, answer.text)
    for alert in ALERTS:
        current = await platform.consultation.get(
            f"/v1/alerts/{platform.id_of(alert)}", headers=platform.headers("admin")
        )
        assert current.json()["version"] == 1


async def test_the_public_feed_carries_public_alerts_only(platform: Platform) -> None:
    feed = await platform.consultation.get("/v1/alerts/feed.atom")
    assert feed.status_code == 200
    assert platform.id_of("public") in feed.text
    for alert in ("restricted", "elsewhere"):
        assert platform.id_of(alert) not in feed.text
    shows_nothing_hidden(platform, "member NZ", feed.text)
    anonymous = await platform.consultation.get(
        f"/v1/alerts/{platform.id_of('restricted')}/cap.xml"
    )
    assert anonymous.status_code == 404


@pytest.mark.parametrize(
    ("recipient", "shown"),
    [(focal("AU"), True), ("ID", True), (focal("TH"), False), ("NZ", False)],
)
async def test_the_acknowledge_link_page_shows_alerts_to_co_chairs_links_only(
    platform: Platform, recipient: str, shown: bool
) -> None:
    """A link minted for someone who is no co-chair (TH's focal point, NZ) shows nothing."""
    for alert in ALERTS:
        alert_id = platform.id_of(alert)
        token = mint_link_token(
            platform.settings.link_signing_secret,
            purpose=ACKNOWLEDGE_LINK_PURPOSE,
            subject=alert_id,
            recipient=recipient,
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        )
        page = await platform.consultation.get(
            f"/v1/alerts/{alert_id}/acknowledge", params={"token": token}
        )
        assert (page.status_code == 200) is shown, (alert, page.status_code)
        assert (platform.alerts[alert]["title"] in page.text) is shown


# --- notifications: inbox ---------------------------------------------------------------------


def expected_inbox(caller: str) -> set[str]:
    return IN_INBOXES[caller] & SEES[caller]


@pytest.mark.parametrize("caller", list(CALLERS))
async def test_the_inbox_lists_what_the_rule_lets_each_reader_see(
    platform: Platform, caller: str
) -> None:
    response = await platform.notifications.get(
        "/v1/inbox?page_size=200", headers=platform.headers(caller)
    )
    assert response.status_code == 200
    page = response.json()
    assert platform.names({item["alert_id"] for item in page["items"]}) == expected_inbox(caller)
    assert page["unread_count"] == len(page["items"])
    shows_nothing_hidden(platform, caller, response.text)


@pytest.mark.parametrize("caller", list(CALLERS))
async def test_an_inbox_item_is_marked_only_by_a_reader_who_may_see_it(
    platform: Platform, caller: str
) -> None:
    headers = platform.headers(caller)
    mine = {f"user:{platform.subject(caller)}", f"member:{member_of(caller)}"}
    async with platform.sessions("notifications")() as session:
        items = list((await session.exec(select(InboxItem))).all())
    assert items
    for item in items:
        [alert] = platform.names({item.alert_id})
        marked = await platform.notifications.patch(
            f"/v1/inbox/{item.id}", json={"read": False}, headers=headers
        )
        allowed = item.owner in mine and alert in SEES[caller]
        assert marked.status_code == (200 if allowed else 404), (item.owner, alert)
        shows_nothing_hidden(platform, caller, marked.text)


@pytest.mark.parametrize("caller", list(CALLERS))
def test_the_live_stream_carried_what_the_rule_lets_each_reader_see(
    platform: Platform, caller: str
) -> None:
    items = platform.live[caller]
    assert platform.names({item["alert_id"] for item in items}) == expected_inbox(caller)
    shows_nothing_hidden(platform, caller, json.dumps(items, ensure_ascii=False))


@pytest.mark.parametrize("last_event_id", [None, "0"])
async def test_the_stream_catches_each_reader_up_with_what_it_may_see(
    platform: Platform, last_event_id: str | None
) -> None:
    """From the unread items, or from the very first (`Last-Event-ID: 0`)."""
    streams = {}
    for caller in CALLERS:
        headers = platform.headers(caller)
        if last_event_id is not None:
            headers = {**headers, "Last-Event-ID": last_event_id}
        streams[caller] = InboxStream(headers)
    async with httpx.AsyncClient(base_url=platform.stream_url, timeout=60) as http:
        readers = [asyncio.create_task(s.read(http)) for s in streams.values()]

        async def caught_up() -> bool:
            return all(len(s.keep_alives) >= 2 for s in streams.values())

        try:
            await eventually(caught_up)
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
    for caller, stream in streams.items():
        got = platform.names({item["alert_id"] for item in stream.items})
        assert got == expected_inbox(caller), caller
        shows_nothing_hidden(platform, caller, json.dumps(stream.items, ensure_ascii=False))


# --- notifications: deliveries, emails, webhooks ----------------------------------------------


@pytest.mark.parametrize("caller", list(CALLERS))
async def test_deliveries_show_no_content_and_members_only_those_of_alerts_they_may_see(
    platform: Platform, caller: str
) -> None:
    """Operations staff and administrators run the pipeline: they see every delivery, which
    carries no alert content; a member sees its own, about alerts it may see."""
    headers = platform.headers(caller)
    everyone = await platform.deliveries()
    if caller in ("ops RSO", "admin"):
        expected = {d.id for d in everyone}
    else:
        mine = {f"user:{platform.subject(caller)}"}
        expected = {
            d.id
            for d in everyone
            if (d.member_id == member_of(caller) or d.recipient in mine)
            and platform.names({d.alert_id}) <= SEES[caller]
        }
    listed = await platform.notifications.get("/v1/deliveries?page_size=200", headers=headers)
    assert {d["id"] for d in listed.json()["items"]} == expected
    shows_nothing_hidden(platform, "member NZ", listed.text)
    for delivery in everyone:
        detail = await platform.notifications.get(f"/v1/deliveries/{delivery.id}", headers=headers)
        assert detail.status_code == (200 if delivery.id in expected else 404)
        shows_nothing_hidden(platform, "member NZ", detail.text)


async def test_emails_reach_the_rule_recipients_and_the_subscriptions_allowed_to_see(
    platform: Platform,
) -> None:
    co_chairs = {focal("AU"), focal("ID")}
    affected = {"restricted": {focal("TH")}, "elsewhere": {focal("PH")}, "public": {focal("TH")}}
    for alert in ALERTS:
        subscribers = {
            mail_address(name)
            for name, (_, channel) in SUBSCRIPTIONS.items()
            if channel == "email" and alert in SUBSCRIBER_GETS[name]
        }
        assert platform.mail.recipients(platform.id_of(alert)) == (
            co_chairs | affected[alert] | subscribers
        ), alert


async def test_webhooks_reach_the_subscriptions_the_rule_lets_see_each_alert(
    platform: Platform,
) -> None:
    for name, (_, channel) in SUBSCRIPTIONS.items():
        if channel == "webhook":
            assert platform.names(platform.hooks.alerts(name)) == SUBSCRIBER_GETS[name], name
