"""Hostile and careless input on every route it can reach: never a 500, always a problem that
names what was wrong. Link tokens with non-ASCII characters, digit-like and huge numbers in
If-Match, odd Idempotency-Keys, integers beyond 64 bits in cursors, ids and query parameters,
odd Last-Event-IDs on event streams, bodies streamed past the limit (over ASGI and over a real
socket), bodies that are not UTF-8 or not multipart, NUL and lone surrogates in text. Webhook
URLs that reach inside are refused at registration and never contacted (nor redirected to),
and spreadsheet exports neutralise formulas in every cell and list element."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import httpx
import openpyxl
import pytest
from bali_common.auth import Role
from bali_common.http.pagination import encode_cursor
from bali_common.tabular import XLSX_MEDIA_TYPE
from bali_devkit.broker import free_port
from bali_devkit.testing.plugin import serving
from bali_notifications import secrets_at_rest
from bali_notifications.channels.webhook import WebhookSender
from bali_notifications.settings import NotificationsSettings
from bali_notifications.ssrf import EgressGuard
from security_support import (
    FORMULAS,
    MAX_REQUEST_BYTES,
    OWNER,
    Deployed,
    Route,
    body_media_type,
    body_of,
    call,
    notification_objects,
    operation_of,
    request_kwargs,
    resolver,
    routes,
    streams,
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


#: Services that only read: no route takes a request body or an If-Match.
READ_ONLY = {"reporting"}


def expect_some(service: Deployed, found: list[Any], what: str) -> None:
    """Some routes of the kind the test attacks, or a read-only service, then skipped."""
    if service.name in READ_ONLY:
        assert not found, f"{service.name} now has {what} routes: take it out of READ_ONLY"
        pytest.skip(f"{service.name} has no {what} routes")
    assert found, f"{service.name} has no {what} routes"


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
        return {"run_id": uuid4().hex, "year": str(datetime.now(UTC).year)}
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
    expect_some(service, if_match_routes, "If-Match")
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


ODD_IDEMPOTENCY_KEYS = [b"", b" ", "é".encode(), "²".encode(), b"\xff\xfe", b"x" * 256, b"k" * 5000]


async def test_an_odd_idempotency_key_is_used_or_a_422_naming_it(service: Deployed) -> None:
    keyed = [r for r in routes(service.app) if r.header("Idempotency-Key")]
    expect_some(service, keyed, "Idempotency-Key")
    ids = await live_ids(service)
    for route in keyed:
        for value in ODD_IDEMPOTENCY_KEYS:
            kwargs = request_kwargs(service, route, ids, service.changer())
            kwargs["headers"]["Idempotency-Key"] = value
            response = await service.client.request(**kwargs)
            where = f"{route.label} Idempotency-Key {value[:12]!r}"
            assert response.status_code < 500, f"{where}: {response.text}"
            if len(value) > 255:
                assert fields(assert_problem(response, 422, where)) == {"header.Idempotency-Key"}
            elif response.status_code >= 400:
                # Refused for what the request asks (a stale version, a row of an import).
                assert response.headers["content-type"] == "application/problem+json", where


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
    expect_some(service, found, "request body")
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
    return _with_text(value, "\x00")


def _with_text(value: Any, text: str) -> tuple[Any, str] | None:
    """The document with `text` put into its first string, and that string's dotted place."""
    if isinstance(value, str):
        return value + text, ""
    if isinstance(value, dict):
        for key, item in value.items():
            found = _with_text(item, text)
            if found is not None:
                return {**value, key: found[0]}, f".{key}{found[1]}"
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _with_text(item, text)
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
    expect_some(service, [True] * checked, "JSON body")


async def test_a_lone_surrogate_is_a_422_naming_the_field(service: Deployed) -> None:
    """JSON may escape half of a UTF-16 pair (`\\ud800`): no database can store that text."""
    ids = await live_ids(service)
    changer = service.changer()
    checked = 0
    for route in routes(service.app):
        kwargs = request_kwargs(service, route, ids, changer)
        placed = _with_text(kwargs.get("json"), "\ud800")
        if placed is None:
            continue
        content = json.dumps(placed[0]).encode()  # ensure_ascii: the escape as JSON carries it
        body = {k: v for k, v in kwargs.items() if k != "json"}
        body["headers"] = {**body["headers"], "Content-Type": "application/json"}
        response = await service.client.request(**body, content=content)
        problem = assert_problem(response, 422, f"{route.label} body{placed[1]}")
        assert fields(problem) == {f"body{placed[1]}"}, problem
        checked += 1
    expect_some(service, [True] * checked, "JSON body")


# --- 7. integers beyond 64 bits in paths and event ids ------------------------------------------


async def past_authorization(
    service: Deployed, route: Route, ids: dict[str, str], **extra: Any
) -> httpx.Response:
    """The request as the service's changer, or as an administrator where the changer may not
    call the route at all (an acting co-chair on operations' routes)."""
    for caller in (service.changer(), service.tokens.admin()):
        kwargs = request_kwargs(service, route, ids, caller)
        response = await service.client.request(**kwargs, **extra)
        if response.status_code != 403:
            break
    return response


def integer_path_params(service: Deployed, route: Route) -> list[str]:
    parameters = operation_of(service, route.method, route.path).get("parameters", [])
    return [
        p["name"]
        for p in parameters
        if p["in"] == "path" and p.get("schema", {}).get("type") == "integer"
    ]


async def test_integer_ids_beyond_64_bits_in_paths_are_a_422_naming_the_field(
    service: Deployed,
) -> None:
    ids = await live_ids(service)
    checked = 0
    for route in routes(service.app):
        for name in integer_path_params(service, route):
            for number in (BEYOND_32_BITS, BEYOND_64_BITS, "9" * 5000, "-" + BEYOND_64_BITS):
                response = await past_authorization(service, route, {**ids, name: number})
                problem = assert_problem(response, 422, f"{route.label} {name}={number[:12]}")
                assert fields(problem) == {f"path.{name}"}, problem
                checked += 1
    assert checked, "every service has integer ids (dead letters at least)"


#: `Last-Event-ID` as browsers resend it, and as careless or hostile clients send it.
ODD_LAST_EVENT_IDS = [
    "²".encode(),
    "٣".encode(),
    "1¹".encode(),
    b"-1",
    b"+1",
    b"1e3",
    b"0x10",
    b"1 2",
    b"",
    b"9" * 20,
    BEYOND_64_BITS.encode(),
    b"9" * 5000,
    b"\xff\xfe",
]


async def test_an_odd_last_event_id_never_breaks_the_stream(service: Deployed) -> None:
    streaming = [r for r in routes(service.app) if streams(service, r)]
    if not streaming:
        pytest.skip(f"{service.name} has no event streams")
    reader = service.tokens(OWNER, (Role.member,))
    for route in streaming:
        assert route.header("Last-Event-ID"), route.label
        for value in ODD_LAST_EVENT_IDS:
            kwargs = request_kwargs(service, route, {}, reader)
            kwargs["headers"]["Last-Event-ID"] = value
            response = await call(service, route, **kwargs)
            where = f"{route.label} Last-Event-ID {value[:12]!r}"
            if response.status_code == 200:
                # Anything but an id the stream sent starts over from the unread items.
                assert response.headers["content-type"].startswith("text/event-stream"), where
            else:
                problem = assert_problem(response, 422, where)
                assert fields(problem) == {"header.Last-Event-ID"}, problem


def invalid_values(spec: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Values the parameter's schema refuses, as a careless client would send them."""
    options = [
        spec["components"]["schemas"][o["$ref"].rsplit("/", 1)[1]] if "$ref" in o else o
        for o in schema.get("anyOf", [schema])
    ]
    values: list[str] = []
    for option in options:
        kind = option.get("type")
        if "enum" in option:
            values.append("no-such-value")
        elif kind == "integer":
            values += ["x", "1.5", BEYOND_64_BITS]
            if "maximum" in option:
                values.append(str(option["maximum"] + 1))
            if "minimum" in option:
                values.append(str(option["minimum"] - 1))
        elif kind == "boolean":
            values.append("maybe")
        elif kind == "string":
            if "maxLength" in option:
                values.append("x" * (option["maxLength"] + 1))
            if "pattern" in option:
                values.append("!?")
    return values


async def test_an_invalid_query_parameter_is_a_422_naming_it(service: Deployed) -> None:
    ids = await live_ids(service)
    checked = 0
    for route in routes(service.app):
        if streams(service, route):
            continue
        parameters = operation_of(service, route.method, route.path).get("parameters", [])
        for parameter in (p for p in parameters if p["in"] == "query"):
            for value in invalid_values(service.spec, parameter.get("schema", {})):
                name = parameter["name"]
                response = await past_authorization(service, route, ids, params={name: value})
                problem = assert_problem(response, 422, f"{route.label} ?{name}={value[:12]}")
                assert fields(problem) == {f"query.{name}"}, (route.label, name, problem)
                checked += 1
    assert checked


# --- 8. webhook URLs that reach inside (SSRF) ---------------------------------------------------


class Canary:
    """A TCP listener on loopback that counts whoever connects: it must hear nobody."""

    def __init__(self) -> None:
        self.port = free_port()
        self.connections = 0
        self._server: asyncio.Server | None = None

    async def _heard(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()

    async def __aenter__(self) -> Canary:
        self._server = await asyncio.start_server(self._heard, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


def ssrf_vectors(port: int) -> list[str]:
    """Loopback, link-local and private destinations in every spelling a resolver accepts."""
    return [
        f"https://127.0.0.1:{port}/hook",
        f"http://127.0.0.1:{port}/hook",
        f"https://localhost:{port}/hook",
        f"https://127.1:{port}/hook",
        f"https://2130706433:{port}/",
        "http://2130706433/",
        f"https://0x7f.1:{port}/",
        "http://0x7f.1/",
        f"https://0x7f000001:{port}/",
        f"https://0177.0.0.1:{port}/",
        f"https://[::1]:{port}/hook",
        f"https://[::ffff:127.0.0.1]:{port}/hook",
        f"https://[::ffff:7f00:1]:{port}/hook",
        f"https://[64:ff9b::7f00:1]:{port}/hook",
        "https://169.254.169.254/latest/meta-data/",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "https://[fe80::1]/hook",
        "https://10.0.0.1/hook",
        "https://192.168.0.1/hook",
        "https://172.16.0.1/hook",
        "https://100.64.0.1/hook",
        "https://0.0.0.0/hook",
        "https://[::]/hook",
        "https://[fd00::1]/hook",
        "https://224.0.0.1/hook",
        f"https://example.com@127.0.0.1:{port}/",
        "http://example.com@127.0.0.1/",
        f"https://user:pass@hooks.example.org:{port}/",
        f"https://127.0.0.1:{port}#@hooks.example.org/",
        f"https://127.0.0.1%2523@hooks.example.org:{port}/",
        f"https://hooks.example.org\\@127.0.0.1:{port}/",
        "https://intranet.example.org/hook",
        f"https://localhost.example.org:{port}/hook",
        "https://metadata.example.org/latest/meta-data/",
        "https://mixed.example.org/hook",
        f"https://v6-loopback.example.org:{port}/hook",
        f"https://v6-mapped.example.org:{port}/hook",
        "file:///etc/passwd",
        f"gopher://127.0.0.1:{port}/_x",
        f"ftp://127.0.0.1:{port}/",
        "https:///hook",
        "//127.0.0.1/hook",
    ]


async def test_webhook_urls_that_reach_inside_are_refused_and_never_contacted(
    service: Deployed,
) -> None:
    if not any(r.label == "POST /v1/subscriptions" for r in routes(service.app)):
        pytest.skip(f"{service.name} registers no webhooks")
    owner = service.tokens(OWNER, (Role.member,))
    public = {"name": "Receiver", "channel": "webhook", "url": "https://hooks.example.org/h"}
    created = await service.client.post("/v1/subscriptions", json=public, headers=owner)
    assert created.status_code == 201, created.text
    path = f"/v1/subscriptions/{created.json()['id']}"
    accepted: list[str] = []
    async with Canary() as canary:
        for url in ssrf_vectors(canary.port):
            registered = await service.client.post(
                "/v1/subscriptions", json={**public, "url": url}, headers=owner
            )
            current = await service.client.get(path, headers=owner)
            changed = await service.client.patch(
                path, json={"url": url}, headers={**owner, "If-Match": current.headers["ETag"]}
            )
            for response in (registered, changed):
                if response.status_code != 422:
                    accepted.append(f"{url}: {response.status_code} {response.text[:200]}")
                    continue
                assert fields(assert_problem(response, 422, url)) == {"body.url"}, url
        await asyncio.sleep(0.2)
    assert not accepted, "\n".join(accepted)
    assert canary.connections == 0
    unchanged = await service.client.get(path, headers=owner)
    assert unchanged.json()["url"] == public["url"]


async def test_a_redirect_to_inside_is_never_followed(service: Deployed) -> None:
    """A receiver the operator allowed answers 302 to a loopback address: the sender reports
    the redirect and goes nowhere else."""
    if service.name != "notifications":
        pytest.skip(f"{service.name} sends no webhooks")
    assert isinstance(service.settings, NotificationsSettings)
    async with Canary() as canary:
        redirector = Redirector(f"http://127.0.0.1:{canary.port}/stolen")
        async with serving(redirector, redirector.port):
            guard = EgressGuard([f"127.0.0.1:{redirector.port}"], resolver)
            sender = WebhookSender(
                service.settings, guard, secrets_at_rest.box_for(service.settings)
            )
            try:
                result = await sender.post(
                    url=f"http://127.0.0.1:{redirector.port}/hook",
                    message_id="msg_redirect",
                    secrets_in_use=["whsec_" + "A" * 44],
                    body=b"{}",
                    timestamp=1_700_000_000,
                )
            finally:
                await sender.aclose()
        assert redirector.calls == 1
        assert not result.succeeded
        assert result.status_code == 302
        assert "redirect not followed" in (result.error or "")
        await asyncio.sleep(0.2)
    assert canary.connections == 0


class Redirector:
    """An ASGI receiver answering every request with a redirect to `location`."""

    def __init__(self, location: str) -> None:
        self.port = free_port()
        self.location = location
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        while (await receive()).get("more_body"):
            pass
        headers = [(b"location", self.location.encode())]
        await send({"type": "http.response.start", "status": 302, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


# --- 9. formulas in spreadsheet exports ---------------------------------------------------------

#: What spreadsheet software reads as the start of a formula (OWASP CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def risky_parts(cell: str) -> list[str]:
    """The parts of a cell a spreadsheet would run: the cell, or any `;`/`,` part of it,
    starting with a formula character (after spaces); plain numbers are numbers."""
    risky = []
    for part in re.split(r"[;,]", cell):
        stripped = part.lstrip(" ")
        if stripped.startswith(FORMULA_STARTS) and not _is_number(stripped):
            risky.append(part)
    return risky


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_cells(content: bytes) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(content.decode("utf-8-sig"))) for cell in row]


def xlsx_cells(content: bytes) -> list[str]:
    workbook = openpyxl.load_workbook(io.BytesIO(content))
    return [
        str(cell.value)
        for sheet in workbook.worksheets
        for row in sheet.iter_rows()
        for cell in row
        if isinstance(cell.value, str) or cell.data_type == "f"
    ]


async def plant_formulas(service: Deployed) -> dict[str, str]:
    """Formulas in the free text of an activity (what the activities service exports)."""
    formulas = {"title": "=1+1 training", "tag": "@sum(1)", "listed tag": "-2+3 cells"}
    body = {
        **body_of(service, "post", "/v1/activities"),
        "title": formulas["title"],
        "tags": [formulas["tag"], formulas["listed tag"]],
    }
    owner = service.tokens(OWNER, (Role.member,))
    created = await service.client.post("/v1/activities", json=body, headers=owner)
    assert created.status_code == 201, created.text
    return formulas


async def test_spreadsheet_exports_neutralise_formulas_in_every_cell_and_list_element(
    service: Deployed,
) -> None:
    exports = [r for r in routes(service.app) if r.path.endswith("/export")]
    if not exports:
        pytest.skip(f"{service.name} exports no spreadsheets")
    planted = FORMULAS if service.name == "reporting" else await plant_formulas(service)
    admin = service.tokens.admin()
    risky: list[str] = []
    written: dict[str, set[str]] = {"csv": set(), "xlsx": set()}
    for route in exports:
        for file_format, cells_of in (("csv", csv_cells), ("xlsx", xlsx_cells)):
            response = await service.client.get(
                route.path, params={"format": file_format}, headers=admin
            )
            assert response.status_code == 200, f"{route.label} {file_format}: {response.text}"
            # Both spreadsheet types are in the OpenAPI document, and each answer is as listed.
            documented = operation_of(service, "get", route.path)["responses"]["200"]["content"]
            assert {"text/csv", XLSX_MEDIA_TYPE} <= set(documented), route.label
            assert response.headers["content-type"].split(";")[0] in documented, route.label
            cells = cells_of(response.content)
            written[file_format].update(cells)
            risky += [f"{route.label} {file_format}: {c!r}" for c in cells if risky_parts(c)]
    assert not risky, "\n".join(risky)
    # The planted formulas did reach the exports, neutralised: the test saw them.
    for file_format, cells in written.items():
        text = "\n".join(cells)
        for where, formula in planted.items():
            first = re.split(r";", formula.lstrip(" "))[0].lstrip(" ")
            if first.startswith(FORMULA_STARTS):
                assert "'" + first in text, f"{where} missing from the {file_format} exports"
