"""Request bodies: over the limit is a 413 however they arrive, unreadable ones a 422 naming
the body; over ASGI and over a real socket (chunked transfer, no Content-Length)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from bali_common.runtime import ServiceDefinition, build_app
from bali_common.settings import CommonSettings
from bali_devkit.broker import free_port
from bali_devkit.testing.plugin import SettingsFactory, running, serving
from fastapi import APIRouter, FastAPI, File, UploadFile
from pydantic import BaseModel

LIMIT = 10_000


class Echo(BaseModel):
    text: str


def create_echo_app(settings: CommonSettings) -> FastAPI:
    router = APIRouter(prefix="/v1/echo")

    @router.post("")
    async def echo(body: Echo) -> Echo:
        return body

    @router.post("/upload")
    async def upload(file: Annotated[UploadFile, File()]) -> dict[str, int]:
        return {"size": len(await file.read())}

    return build_app(
        ServiceDefinition(
            name="echo", title="Echo", description="Body limits probe", models=[], routers=[router]
        ),
        settings,
    )


@pytest.fixture
async def echo(make_settings: SettingsFactory) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings = await make_settings(CommonSettings, service_name="echo", max_request_bytes=LIMIT)
    app = create_echo_app(settings)
    async with running(app) as client:
        yield app, client


async def chunks(total: int, size: int = 1024) -> AsyncIterator[bytes]:
    """A JSON document of `total` bytes, sent in pieces and with no declared length."""
    yield b'{"text": "'
    sent = 12
    while sent < total:
        piece = min(size, total - sent)
        yield b"x" * piece
        sent += piece
    yield b'"}'


def multipart(total: int, boundary: str = "b0undary") -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\n".encode()
        + b"x" * total
        + f"\r\n--{boundary}--\r\n".encode()
    )


async def streamed(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 1024):
        yield data[start : start + 1024]


def assert_too_large(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert str(LIMIT) in response.json()["detail"]


JSON = {"Content-Type": "application/json"}


async def check_streams(client: httpx.AsyncClient) -> None:
    ok = await client.post("/v1/echo", content=chunks(LIMIT // 2), headers=JSON)
    assert ok.status_code == 200, ok.text
    assert "content-length" not in ok.request.headers
    assert_too_large(await client.post("/v1/echo", content=chunks(LIMIT * 3), headers=JSON))
    form = {"Content-Type": "multipart/form-data; boundary=b0undary"}
    small = await client.post("/v1/echo/upload", content=streamed(multipart(100)), headers=form)
    assert small.json() == {"size": 100}
    big = streamed(multipart(LIMIT * 3))
    assert_too_large(await client.post("/v1/echo/upload", content=big, headers=form))
    declared = await client.post("/v1/echo", content=b"{" + b" " * LIMIT * 2 + b"}", headers=JSON)
    assert_too_large(declared)


async def test_a_streamed_oversize_body_is_a_413_over_asgi(echo: Any) -> None:
    _, client = echo
    await check_streams(client)


async def test_a_streamed_oversize_body_is_a_413_over_a_socket(echo: Any) -> None:
    app, _ = echo
    port = free_port()
    async with (
        serving(app, port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
    ):
        await check_streams(client)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"text": "\xff\xfe"}', "application/json"),
        (b"\xff\xfe\xfd", "application/json"),
        (b"--x\r\nbroken", "multipart/form-data; boundary=x"),
        (b"whatever", "multipart/form-data"),
    ],
    ids=["latin1-in-json", "not-utf8", "broken-multipart", "no-boundary"],
)
async def test_an_unreadable_body_is_a_422_naming_the_body(
    echo: Any, content: bytes, content_type: str
) -> None:
    _, client = echo
    path = "/v1/echo/upload" if content_type.startswith("multipart") else "/v1/echo"
    response = await client.post(path, content=content, headers={"Content-Type": content_type})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert all(e["field"].startswith("body") for e in response.json()["errors"])
