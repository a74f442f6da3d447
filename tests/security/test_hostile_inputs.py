"""Hostile and careless input on every route it can reach: never a 500, always a problem that
names what was wrong. Link tokens with non-ASCII characters, digit-like and huge numbers in
If-Match, integers beyond 64 bits in cursors and ids, bodies streamed past the limit (over
ASGI and over a real socket), bodies that are not UTF-8 or not multipart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import httpx
import pytest
from bali_common.auth import Role
from bali_common.http.pagination import encode_cursor
from bali_devkit.broker import free_port
from bali_devkit.testing.plugin import serving
from security_support import (
    MAX_REQUEST_BYTES,
    OWNER,
    Deployed,
    Route,
    body_media_type,
    body_of,
    notification_objects,
    request_kwargs,
    routes,
)

BEYOND_64_BITS = "1" + "0" * 22
#: Past PostgreSQL's INTEGER (int4), within 64 bits: what SQLite alone would accept.
BEYOND_32_BITS = str(2**31)
UNUSABLE_IF_MATCH = ['"v²"', '"v1¹"', f'"v{"9" * 5000}"', f'"v{2**64}"', '"v٣"']
CRAFTED_CURSORS = [
    [2**31],
    [2**40],
    [10**30],
    [2**63],
    [-(2**64)],
    [10**30, 10**30],
    ["x", 10**30],
    [10**30, "x", 10**30],
]


def assert_problem(response: httpx.Response, status: int, where: str) -> dict[str, Any]:
    assert response.status_code == status, f"{where}: {response.status_code} {response.text}"
    assert response.headers["content-type"] == "application/problem+json", where
    body = response.json()
    assert isinstance(body, dict)
    return body


def fields(problem: dict[str, Any]) -> set[str]:
    return {error["field"] for error in problem.get("errors", [])}


async def live_ids(service: Deployed) -> dict[str, str]:
    """Objects that exist and can be changed, so that If-Match is actually read."""
    changer = service.changer()
    owner = service.tokens(OWNER, (Role.member,))
    if service.name == "activities":
        activity = await service.client.post(
            "/v1/activities", json=body_of(service, "post", "/v1/activities"), headers=owner
        )
        path = f"/v1/members/{OWNER}/focal-points"
        focal_point = await service.client.post(
            path,
            json=body_of(service, "post", "/v1/members/{member_id}/focal-points"),
            headers=changer,
        )
        assert focal_point.status_code == 201, focal_point.text
        return {
            "activity_id": activity.json()["id"],
            "member_id": OWNER,
            "focal_point_id": focal_point.headers["Location"].rsplit("/", 1)[1],
        }
    if service.name == "notifications":
        return await notification_objects(service, OWNER)
    if service.name == "reporting":
        return {"run_id": uuid4().hex}
    body = {**body_of(service, "post", "/v1/alerts"), "dedup_key": f"inputs-{uuid4().hex}"}
    alert = await service.client.post("/v1/alerts", json=body, headers=owner)
    assert alert.status_code == 201, alert.text
    return {"alert_id": alert.json()["id"]}


# --- 1. signed links ----------------------------------------------------------------------------


async def test_a_link_token_with_non_ascii_characters_is_an_invalid_link(
    service: Deployed,
) -> None:
    link_routes = [r for r in routes(service.app) if r.query("token")]
    if not link_routes:
        pytest.skip(f"{service.name} has no signed-link routes")
    ids = await live_ids(service)
    genuine_looking = "eyJwdXJwb3NlIjoiYWxlcnQuYWNrbm93bGVkZ2UifQ.c2lnbmF0dXJl"
    for token in (genuine_looking + "é", genuine_looking[:-3] + "²¹", "ü.ö"):
        for route in link_routes:
            kwargs = request_kwargs(service, route, ids, {"Accept": "application/json"})
            kwargs.pop("json", None)
            response = await service.client.request(**kwargs, params={"token": token})
            assert response.status_code == 403, (route.label, token, response.text)


# --- 2. If-Match --------------------------------------------------------------------------------


async def test_unusable_if_match_is_a_412_on_every_route_that_reads_it(service: Deployed) -> None:
    if_match_routes = [r for r in routes(service.app) if r.header("If-Match")]
    assert if_match_routes
    changer = service.changer()
    refused = 0
    for route in if_match_routes:
        ids = await live_ids(service)
        for value in UNUSABLE_IF_MATCH:
            kwargs = request_kwargs(service, route, ids, changer)
            kwargs["headers"]["If-Match"] = value.encode()
            response = await service.client.request(**kwargs)
            where = f"{route.label} If-Match {value[:12]}"
            assert 400 <= response.status_code < 500, f"{where}: {response.text}"
            assert response.headers["content-type"] == "application/problem+json", where
            refused += response.status_code == 412
            if route.method == "patch":
                assert_problem(response, 412, where)
    assert refused


# --- 3. integers beyond 64 bits -----------------------------------------------------------------


async def test_crafted_cursors_are_a_422_naming_the_cursor(service: Deployed) -> None:
    paged = [r for r in routes(service.app) if r.query("cursor")]
    assert paged
    ids = await live_ids(service)
    changer = service.changer()
    for route in paged:
        for cursor in CRAFTED_CURSORS:
            kwargs = request_kwargs(service, route, ids, changer)
            response = await service.client.request(
                **kwargs, params={"cursor": encode_cursor(cursor)}
            )
            problem = assert_problem(response, 422, f"{route.label} cursor {cursor}")
            assert fields(problem) == {"query.cursor"}


async def test_dead_letter_ids_beyond_64_bits_are_a_422_naming_the_field(
    service: Deployed,
) -> None:
    ops = service.tokens.ops()
    for number in (BEYOND_32_BITS, BEYOND_64_BITS):
        listed = await service.client.get(
            "/v1/admin/dead-letters", params={"after": number}, headers=ops
        )
        assert fields(assert_problem(listed, 422, "list")) == {"query.after"}
        replayed = await service.client.post(f"/v1/admin/dead-letters/{number}/replay", headers=ops)
        assert fields(assert_problem(replayed, 422, "replay")) == {"path.letter_id"}


# --- 4. bodies past the limit -------------------------------------------------------------------


def body_routes(service: Deployed) -> list[tuple[Route, str]]:
    found = []
    for route in routes(service.app):
        media_type = body_media_type(service, route)
        if media_type is not None:
            found.append((route, media_type))
    assert found
    return found


async def streamed(total: int, *, prefix: bytes = b"") -> AsyncIterator[bytes]:
    """`prefix`, then `total` bytes in 4 KiB chunks: chunked transfer, no Content-Length."""
    yield prefix
    for _ in range(total // 4096 + 1):
        yield b"x" * 4096


#: The start of a well-formed multipart body whose one file then never ends.
MULTIPART_START = (
    b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
    b"Content-Type: text/csv\r\n\r\n"
)


async def send_oversize(client: httpx.AsyncClient, service: Deployed) -> None:
    ids = await live_ids(service)
    for route, media_type in body_routes(service):
        kwargs = request_kwargs(service, route, ids, service.changer())
        for key in ("json", "files"):
            kwargs.pop(key, None)
        multipart = media_type == "multipart/form-data"
        kwargs["headers"]["Content-Type"] = media_type + ("; boundary=x" if multipart else "")
        body = streamed(MAX_REQUEST_BYTES * 3, prefix=MULTIPART_START if multipart else b"")
        response = await client.request(**kwargs, content=body)
        assert "content-length" not in response.request.headers
        assert_problem(response, 413, f"{route.label} {media_type}")


async def test_a_body_streamed_past_the_limit_is_a_413_over_asgi(service: Deployed) -> None:
    await send_oversize(service.client, service)


async def test_a_body_streamed_past_the_limit_is_a_413_over_a_socket(service: Deployed) -> None:
    port = free_port()
    async with (
        serving(service.app, port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as client,
    ):
        await send_oversize(client, service)


# --- 5. bodies that cannot be read --------------------------------------------------------------


UNREADABLE = {
    "application/json": [b'{"title": "\xff\xfe"}', b"\xc3\x28\xa0\xa1"],
    "multipart/form-data": [b"--x\r\nno headers, no end", b"not multipart at all"],
}


async def test_an_unreadable_body_is_a_422_naming_the_body(service: Deployed) -> None:
    ids = await live_ids(service)
    checked = 0
    for route, media_type in body_routes(service):
        for content in UNREADABLE.get(media_type, []):
            kwargs = request_kwargs(service, route, ids, service.changer())
            for key in ("json", "files"):
                kwargs.pop(key, None)
            boundary = "; boundary=x" if media_type == "multipart/form-data" else ""
            kwargs["headers"]["Content-Type"] = media_type + boundary
            response = await service.client.request(**kwargs, content=content)
            problem = assert_problem(response, 422, f"{route.label} {content[:12]!r}")
            assert all(f.startswith("body") for f in fields(problem)), problem
            checked += 1
    assert checked


# --- 6. text the databases cannot store ---------------------------------------------------------


def _with_nul(value: Any) -> tuple[Any, str] | None:
    """The document with NUL put into its first string, and that string's dotted place."""
    if isinstance(value, str):
        return value + "\x00", ""
    if isinstance(value, dict):
        for key, item in value.items():
            found = _with_nul(item)
            if found is not None:
                return {**value, key: found[0]}, f".{key}{found[1]}"
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _with_nul(item)
            if found is not None:
                return [*value[:index], found[0], *value[index + 1 :]], f".{index}{found[1]}"
    return None


async def test_a_nul_character_is_a_422_naming_the_field(service: Deployed) -> None:
    ids = await live_ids(service)
    changer = service.changer()
    checked = 0
    for route in routes(service.app):
        kwargs = request_kwargs(service, route, ids, changer)
        placed = _with_nul(kwargs.get("json"))
        if placed is not None:
            body = {**kwargs, "json": placed[0]}
            response = await service.client.request(**body)
            problem = assert_problem(response, 422, f"{route.label} body{placed[1]}")
            assert fields(problem) == {f"body{placed[1]}"}, problem
            checked += 1
        if route.path_params:
            name = route.path_params[0]
            nul_ids = {**ids, name: ids.get(name, "x") + "%00"}
            response = await service.client.request(
                **request_kwargs(service, route, nul_ids, changer)
            )
            assert 400 <= response.status_code < 500, f"{route.label} path: {response.text}"
    assert checked
