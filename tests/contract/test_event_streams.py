"""The event streams against their OpenAPI document, over a real socket: schemathesis leaves
them out (a stream never ends by itself), so this test holds them to it. Every caller, and
every kind of `Last-Event-ID` a careless or hostile client sends: each answer's status and
media type are documented, refusals are problem documents, and a stream's frames are
server-sent events whose data is the documented item."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from bali_common.auth import Role
from bali_devkit.broker import free_port
from bali_devkit.testing.plugin import SettingsFactory, TokenBook, running, serving
from bali_notifications.inbox.models import InboxItem
from contract_support import EVENT_STREAM, SERVICES
from fastapi import FastAPI

CALLERS = {
    "member": lambda tokens: tokens("MY", (Role.member,)),
    "co_chair": lambda tokens: tokens.co_chair("AU"),
    "ops": lambda tokens: tokens.ops(),
    "admin": lambda tokens: tokens.admin(),
    "no token": lambda tokens: {},
    "bad token": lambda tokens: {"Authorization": "Bearer not.a.token"},
}
LAST_EVENT_IDS: list[bytes | None] = [
    None,
    b"0",
    b"1",
    "²".encode(),
    '"v²"'.encode(),
    "٣".encode(),
    b"-1",
    b"1e3",
    b"7 8",
    b"9" * 20,
    b"9" * 21,
    b"9" * 5000,
    str(2**64).encode(),
    b"\xff\xfe",
]


def stream_operations(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (path, operations["get"])
        for path, operations in spec["paths"].items()
        if EVENT_STREAM
        in operations.get("get", {}).get("responses", {}).get("200", {}).get("content", {})
    ]


def test_only_the_notifications_inbox_streams(tmp_path: Path) -> None:
    """The services whose streams this test covers: a new stream joins the list below."""
    streaming = {}
    for name, under_test in SERVICES.items():
        settings = under_test.settings(data_dir=tmp_path, database_url="sqlite+aiosqlite://")
        app = under_test.create_app(settings)
        streaming[name] = [path for path, _ in stream_operations(app.openapi())]
    assert streaming == {
        "activities": [],
        "consultation": [],
        "notifications": ["/v1/inbox/stream"],
        "reporting": [],
    }


async def test_the_inbox_stream_honours_its_openapi_document(
    make_settings: SettingsFactory,
) -> None:
    under_test = SERVICES["notifications"]
    app = under_test.create_app(await make_settings(under_test.settings))
    port = free_port()
    async with (
        running(app),
        serving(app, port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as client,
    ):
        await _add_inbox_item(app)
        spec = (await client.get("/openapi.json")).json()
        tokens = TokenBook(app.state.runtime.settings)
        [(path, operation)] = stream_operations(spec)
        checked = items = 0
        for caller, headers_of in CALLERS.items():
            for last_event_id in LAST_EVENT_IDS:
                headers: dict[str, Any] = dict(headers_of(tokens))
                if last_event_id is not None:
                    headers["Last-Event-ID"] = last_event_id
                where = f"{caller}, Last-Event-ID {(last_event_id or b'')[:12]!r}"
                async with client.stream("GET", path, headers=headers) as response:
                    frames = await _conforms(spec, operation, response, where)
                    if frames is not None and caller == "member" and last_event_id == b"0":
                        # Resumed from the start: the member's item comes as documented.
                        frame = await anext(frames)
                        assert frame["event"] == "inbox.item", where
                        item = {"$ref": "#/components/schemas/InboxItemPublic"}
                        jsonschema.validate(
                            json.loads(frame["data"]), {**item, "components": spec["components"]}
                        )
                        items += 1
                checked += 1
        assert items == 1
        assert checked == len(CALLERS) * len(LAST_EVENT_IDS)


async def _add_inbox_item(app: FastAPI) -> None:
    async with app.state.runtime.sessions() as session:
        session.add(
            InboxItem(
                owner="member:MY",
                delivery_id="contract-item",
                event_type="activity.created",
                title="Border officials' biometrics training",
                body="Planned",
            )
        )
        await session.commit()


async def _conforms(
    spec: dict[str, Any], operation: dict[str, Any], response: httpx.Response, where: str
) -> AsyncIterator[dict[str, str]] | None:
    """Checks the answer against the document; of a stream, its frames after the first."""
    documented = operation["responses"].get(str(response.status_code))
    if documented is None:
        await response.aread()
        pytest.fail(f"{where}: undocumented status {response.status_code} {response.text}")
    media_type = response.headers.get("content-type", "").split(";")[0].strip()
    assert media_type in documented["content"], f"{where}: {media_type} undocumented"
    if response.status_code != 200:
        await response.aread()
        schema = {**documented["content"][media_type]["schema"], "components": spec["components"]}
        jsonschema.validate(response.json(), schema)
        return None
    frames = _frames(response)
    assert "retry" in await anext(frames), where
    return frames


async def _frames(response: httpx.Response) -> AsyncIterator[dict[str, str]]:
    frame: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if frame:
                yield frame
            frame = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        frame[name] = value.lstrip()
