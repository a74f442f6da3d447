"""Listing alerts: filters, newest first, keyset pages."""

from __future__ import annotations

from typing import Any

from consultation_testkit import Service


async def test_list_filters_and_pages_through_visible_alerts(service: Service) -> None:
    ids = []
    for _ in range(5):
        service.clock.advance(seconds=1)
        ids.append(
            (await service.raise_alert("VN", severity="Minor", sensitivity="restricted"))["id"]
        )
    headers = service.auth("VN")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"page_size": 2, "raised_by_member": "VN", "severity": "Minor"}
        if cursor:
            params["cursor"] = cursor
        page = (await service.client.get("/v1/alerts", params=params, headers=headers)).json()
        seen.extend(a["id"] for a in page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    assert seen == list(reversed(ids)), "newest first, each once"
    closed = await service.client.get(
        "/v1/alerts", params={"open": "false", "raised_by_member": "VN"}, headers=headers
    )
    assert closed.json()["items"] == []
    bad = await service.client.get("/v1/alerts", params={"cursor": "%%%"}, headers=headers)
    assert bad.status_code == 422
    too_big = await service.client.get("/v1/alerts", params={"page_size": 10**6}, headers=headers)
    assert too_big.status_code == 422
