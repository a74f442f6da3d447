"""The in-app inbox: listed, marked read, and streamed live with resumption."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
from bali_devkit.testing.plugin import serving
from notification_harness import Harness, ServiceStarter, alert_raised
from notification_receivers import free_port


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def harness(notifications: ServiceStarter) -> AsyncIterator[Harness]:
    async with notifications.started("inbox") as harness:
        yield harness


async def test_inbox_lists_marks_read_and_streams_new_items_live(harness: Harness) -> None:
    port = free_port()
    member = harness.tokens("MY", subject="mei")
    payload = alert_raised(raised_by="PH", affected=["MY"])
    async with (
        serving(harness.app, port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http,
        http.stream("GET", "/v1/inbox/stream", headers=member) as stream,
    ):
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        frames = _sse_frames(stream)
        event = await harness.publish(payload, subject=payload.alert.alert_id)
        await harness.planned(event, 7)
        await harness.dispatch()
        item = await asyncio.wait_for(_next_item_for(frames, payload.alert.alert_id), 20)
        assert item["owner"] == "member:MY"
        assert item["severity"] == "Extreme"
        assert item["read"] is False
        assert item["title"].startswith("[EXTREME] Alert raised")
        # A reconnecting client names the last item it saw and gets what came after it.
        resumed = http.stream(
            "GET", "/v1/inbox/stream", headers={**member, "Last-Event-ID": str(item["id"] - 1)}
        )
        async with resumed as again:
            first = await asyncio.wait_for(_next_item_for(_sse_frames(again), None), 20)
            assert first["id"] == item["id"]
        # An id the stream never sent (superscript digits, too large) starts from the unread.
        for odd in ("²".encode(), "1¹".encode(), b"9" * 20):
            retried = http.stream(
                "GET", "/v1/inbox/stream", headers={**member, "Last-Event-ID": odd}
            )
            async with retried as afresh:
                assert afresh.status_code == 200
                first = await asyncio.wait_for(_next_item_for(_sse_frames(afresh), None), 20)
                assert first["id"] == item["id"]

    inbox = await harness.client.get("/v1/inbox?unread=true", headers=member)
    assert inbox.status_code == 200
    unread_before = inbox.json()["unread_count"]
    assert item["id"] in [i["id"] for i in inbox.json()["items"]]
    marked = await harness.client.patch(
        f"/v1/inbox/{item['id']}", json={"read": True}, headers=member
    )
    assert marked.status_code == 200
    assert marked.json()["read"] is True
    after = await harness.client.get("/v1/inbox", headers=member)
    assert after.json()["unread_count"] == unread_before - 1
    other = await harness.client.patch(
        f"/v1/inbox/{item['id']}", json={"read": True}, headers=harness.tokens("IOM")
    )
    assert other.status_code == 404
    bad = await harness.client.patch(
        f"/v1/inbox/{item['id']}", json={"read": "maybe"}, headers=member
    )
    assert bad.status_code == 422


async def _sse_frames(stream: httpx.Response) -> AsyncIterator[dict[str, str]]:
    frame: dict[str, str] = {}
    async for line in stream.aiter_lines():
        if not line:
            if frame:
                yield frame
            frame = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        frame[name] = value.lstrip()


async def _next_item_for(
    frames: AsyncIterator[dict[str, str]], alert_id: str | None
) -> dict[str, Any]:
    async for frame in frames:
        if frame.get("event") == "inbox.item":
            item: dict[str, Any] = json.loads(frame["data"])
            if alert_id is None or item["alert_id"] == alert_id:
                assert frame["id"] == str(item["id"])
                return item
    raise AssertionError("stream ended")
