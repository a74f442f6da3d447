"""Bearer JWT authentication and role checks, attacked through a real FastAPI app."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import multiprocessing
import os
import stat
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from bali_common.auth import (
    AuthenticationError,
    AuthorizationError,
    CurrentPrincipal,
    Principal,
    Role,
    TokenVerifier,
    admits_roles,
    dev_jwks,
    issue_dev_token,
    jwk_thumbprint,
    load_or_create_dev_key,
    require_roles,
)
from bali_common.settings import CommonSettings
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

# --- scaffolding ------------------------------------------------------------------------------


def make_app(settings: CommonSettings) -> FastAPI:
    app = FastAPI()
    app.state.token_verifier = TokenVerifier(settings)

    async def auth_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AuthenticationError | AuthorizationError)
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)

    app.add_exception_handler(AuthenticationError, auth_error)
    app.add_exception_handler(AuthorizationError, auth_error)

    @app.get("/me")
    async def me(principal: CurrentPrincipal) -> dict[str, Any]:
        return {
            "subject": principal.subject,
            "member_id": principal.member_id,
            "roles": sorted(principal.roles),
            "name": principal.name,
            "email": principal.email,
        }

    @app.get("/co-chair")
    async def co_chair(principal: Principal = Depends(require_roles(Role.co_chair))) -> str:
        return principal.subject

    return app


@pytest.fixture
def settings(tmp_path: Path) -> CommonSettings:
    return CommonSettings(data_dir=tmp_path, jwks_url=None)


@pytest.fixture
async def client(settings: CommonSettings) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(make_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as c:
        yield c


@pytest.fixture(scope="module")
def attacker_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(obj: Any) -> str:
    return b64(json.dumps(obj, separators=(",", ":")).encode())


def claims(settings: CommonSettings, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": "user-1",
        "iat": now,
        "exp": now + 600,
        "roles": ["admin", "co_chair"],
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def dev_key(settings: CommonSettings) -> rsa.RSAPrivateKey:
    return load_or_create_dev_key(settings.resolved_dev_key_path())


def sign_dev(settings: CommonSettings, payload: dict[str, Any]) -> str:
    return jwt.encode(payload, dev_key(settings), algorithm="RS256")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- forged / invalid tokens: all 401 ---------------------------------------------------------


def alg_none(settings: CommonSettings, _: rsa.RSAPrivateKey) -> str:
    return f"{b64json({'alg': 'none', 'typ': 'JWT'})}.{b64json(claims(settings))}."


def hs256_with_public_pem(settings: CommonSettings, _: rsa.RSAPrivateKey) -> str:
    pem = (
        dev_key(settings)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    signing_input = f"{b64json({'alg': 'HS256', 'typ': 'JWT'})}.{b64json(claims(settings))}"
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def other_rsa_key(settings: CommonSettings, attacker: rsa.RSAPrivateKey) -> str:
    # Even borrowing the real key id must not help.
    kid = jwk_thumbprint(dev_key(settings).public_key())
    return jwt.encode(claims(settings), attacker, algorithm="RS256", headers={"kid": kid})


def expired(settings: CommonSettings, _: rsa.RSAPrivateKey) -> str:
    now = int(time.time())
    return sign_dev(settings, claims(settings, iat=now - 7200, exp=now - 3600))


def missing_exp(settings: CommonSettings, _: rsa.RSAPrivateKey) -> str:
    payload = claims(settings)
    del payload["exp"]
    return sign_dev(settings, payload)


def wrong_aud(settings: CommonSettings, _: rsa.RSAPrivateKey) -> str:
    return sign_dev(settings, claims(settings, aud="some-other-api"))


def wrong_iss(settings: CommonSettings, _: rsa.RSAPrivateKey) -> str:
    return sign_dev(settings, claims(settings, iss="https://evil.example"))


def missing_sub(settings: CommonSettings, _: rsa.RSAPrivateKey) -> str:
    payload = claims(settings)
    del payload["sub"]
    return sign_dev(settings, payload)


def sql_kid(settings: CommonSettings, attacker: rsa.RSAPrivateKey) -> str:
    headers = {"kid": "' OR '1'='1'; DROP TABLE signing_keys; --"}
    return jwt.encode(claims(settings), attacker, algorithm="RS256", headers=headers)


def tampered_payload(settings: CommonSettings, _: rsa.RSAPrivateKey) -> str:
    header, _payload, signature = sign_dev(settings, claims(settings, roles=["member"])).split(".")
    return f"{header}.{b64json(claims(settings, roles=['admin']))}.{signature}"


@pytest.mark.parametrize(
    "forge",
    [
        alg_none,
        hs256_with_public_pem,
        other_rsa_key,
        expired,
        missing_exp,
        wrong_aud,
        wrong_iss,
        missing_sub,
        sql_kid,
        tampered_payload,
    ],
)
async def test_forged_or_invalid_token_is_401(
    client: httpx.AsyncClient,
    settings: CommonSettings,
    attacker_key: rsa.RSAPrivateKey,
    forge: Callable[[CommonSettings, rsa.RSAPrivateKey], str],
) -> None:
    token = forge(settings, attacker_key)
    resp = await client.get("/me", headers=bearer(token))
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert token not in resp.text
    # Role checks never run ahead of authentication.
    assert (await client.get("/co-chair", headers=bearer(token))).status_code == 401


async def test_missing_authorization_header_is_401(client: httpx.AsyncClient) -> None:
    resp = await client.get("/me")
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == "Bearer"  # RFC 6750 §3: no error code


@pytest.mark.parametrize(
    "value",
    ["Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc", "Bearer not-a-jwt", "Bearer a.b.c.d"],
)
async def test_malformed_authorization_header_is_401(client: httpx.AsyncClient, value: str) -> None:
    resp = await client.get("/me", headers={"Authorization": value})
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"].startswith("Bearer")


class ConnectionCounter:
    def __init__(self) -> None:
        self.count = 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.count += 1
        writer.close()


async def _jku_token_is_ignored(
    client: httpx.AsyncClient, settings: CommonSettings, attacker_key: rsa.RSAPrivateKey
) -> None:
    counter = ConnectionCounter()
    server = await asyncio.start_server(counter, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}/jwks.json"
    try:
        headers = {"jku": url, "x5u": url, "kid": "attacker-key"}
        token = jwt.encode(claims(settings), attacker_key, algorithm="RS256", headers=headers)
        resp = await client.get("/me", headers=bearer(token))
        assert resp.status_code == 401
        await asyncio.sleep(0.1)  # let any connection that was made reach the listener
        assert counter.count == 0
    finally:
        server.close()
        await server.wait_closed()


async def test_jku_and_x5u_are_never_fetched(
    client: httpx.AsyncClient, settings: CommonSettings, attacker_key: rsa.RSAPrivateKey
) -> None:
    await _jku_token_is_ignored(client, settings, attacker_key)


# --- accepted tokens and roles ----------------------------------------------------------------


async def test_valid_token_yields_principal(
    client: httpx.AsyncClient, settings: CommonSettings
) -> None:
    token = issue_dev_token(
        settings,
        subject="user-42",
        member_id="AU",
        roles=[Role.member],
        name="Ada",
        email="ada@example.org",
        extra_claims={"locale": "en"},
    )
    resp = await client.get("/me", headers=bearer(token))
    assert resp.status_code == 200
    assert resp.json() == {
        "subject": "user-42",
        "member_id": "AU",
        "roles": ["member"],
        "name": "Ada",
        "email": "ada@example.org",
    }
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    assert header["kid"] == jwk_thumbprint(dev_key(settings).public_key())


async def test_unknown_roles_are_ignored(
    client: httpx.AsyncClient, settings: CommonSettings
) -> None:
    token = sign_dev(settings, claims(settings, roles=["co_chair", "superuser", 7]))
    resp = await client.get("/me", headers=bearer(token))
    assert resp.status_code == 200
    assert resp.json()["roles"] == ["co_chair"]


async def test_roles_claim_must_be_a_list(
    client: httpx.AsyncClient, settings: CommonSettings
) -> None:
    token = sign_dev(settings, claims(settings, roles="admin"))
    assert (await client.get("/me", headers=bearer(token))).status_code == 401


async def test_missing_role_is_403(client: httpx.AsyncClient, settings: CommonSettings) -> None:
    token = issue_dev_token(settings, subject="u", member_id="NZ", roles=[Role.member, Role.ops])
    resp = await client.get("/co-chair", headers=bearer(token))
    assert resp.status_code == 403
    assert "co_chair" in resp.json()["detail"]


@pytest.mark.parametrize("role", [Role.co_chair, Role.admin])
async def test_role_or_admin_passes(
    client: httpx.AsyncClient, settings: CommonSettings, role: Role
) -> None:
    token = issue_dev_token(settings, subject="chair", member_id=None, roles=[role])
    resp = await client.get("/co-chair", headers=bearer(token))
    assert resp.status_code == 200
    assert resp.json() == "chair"


def test_principal_helpers() -> None:
    p = Principal(subject="s", roles=frozenset({Role.admin}))
    assert p.is_admin
    assert p.allows(Role.co_chair)
    assert not p.has_role(Role.co_chair)
    assert Principal(subject="s").allows(Role.member) is False


def test_verifier_refuses_symmetric_or_none_algorithms(tmp_path: Path) -> None:
    for algs in (["HS256"], ["RS256", "none"], []):
        with pytest.raises(ValueError, match="asymmetric"):
            TokenVerifier(CommonSettings(data_dir=tmp_path, jwt_algorithms=algs))


def test_extra_claims_cannot_override_registered_claims(settings: CommonSettings) -> None:
    with pytest.raises(ValueError, match="aud"):
        issue_dev_token(settings, subject="s", member_id=None, roles=[], extra_claims={"aud": "x"})


def test_sync_verify_raises_authentication_error(settings: CommonSettings) -> None:
    verifier = TokenVerifier(settings)
    token = issue_dev_token(settings, subject="s", member_id="PH", roles=[Role.ops])
    assert verifier.verify(token).roles == frozenset({Role.ops})
    with pytest.raises(AuthenticationError) as info:
        verifier.verify(token[:-4] + "AAAA")
    assert info.value.status_code == 401


# --- dev key ----------------------------------------------------------------------------------


def test_jwk_thumbprint_matches_rfc7638_example() -> None:
    # RFC 7638 §3.1
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
        "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY"
        "368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0f"
        "M4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    modulus = int.from_bytes(base64.urlsafe_b64decode(n + "=" * (-len(n) % 4)), "big")
    public = rsa.RSAPublicNumbers(65537, modulus).public_key()
    assert jwk_thumbprint(public) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_dev_key_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "key.pem"
    first = load_or_create_dev_key(path)
    assert first.key_size == 2048
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert jwk_thumbprint(load_or_create_dev_key(path).public_key()) == jwk_thumbprint(
        first.public_key()
    )
    assert os.listdir(path.parent) == ["key.pem"]  # no temp file left behind


def test_dev_key_loser_of_race_adopts_winner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministic version of the race: another process publishes between our write and link."""
    path = tmp_path / "key.pem"
    winner = load_or_create_dev_key(tmp_path / "winner.pem")
    real_link = os.link

    def link_after_rival(src: str, dst: Path) -> None:
        os.replace(tmp_path / "winner.pem", dst)
        real_link(src, dst)

    monkeypatch.setattr(os, "link", link_after_rival)
    got = load_or_create_dev_key(path)
    assert jwk_thumbprint(got.public_key()) == jwk_thumbprint(winner.public_key())
    assert os.listdir(tmp_path) == ["key.pem"]


def _race_worker(path: Path, barrier: Any, results: Any) -> None:
    barrier.wait(timeout=60)
    results.put(jwk_thumbprint(load_or_create_dev_key(path).public_key()))


def test_dev_key_concurrent_processes_agree(tmp_path: Path) -> None:
    path = tmp_path / "shared" / "key.pem"
    ctx = multiprocessing.get_context("spawn")
    workers = 4
    barrier = ctx.Barrier(workers)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_race_worker, args=(path, barrier, results)) for _ in range(workers)
    ]
    for proc in procs:
        proc.start()
    thumbprints = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    assert len(set(thumbprints)) == 1
    assert thumbprints[0] == jwk_thumbprint(load_or_create_dev_key(path).public_key())
    assert os.listdir(path.parent) == ["key.pem"]


# --- JWKS (production path) -------------------------------------------------------------------


class JwksServer:
    def __init__(self, document: dict[str, Any]) -> None:
        body = json.dumps(document).encode()
        self.requests = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def jwks_settings(settings: CommonSettings) -> Iterator[tuple[CommonSettings, JwksServer]]:
    server = JwksServer(dev_jwks(settings))
    try:
        yield settings.model_copy(update={"jwks_url": server.url}), server
    finally:
        server.close()


async def test_jwks_verifies_and_rejects_foreign_keys(
    jwks_settings: tuple[CommonSettings, JwksServer], attacker_key: rsa.RSAPrivateKey
) -> None:
    settings, server = jwks_settings
    verifier = TokenVerifier(settings)
    assert verifier.uses_jwks

    token = issue_dev_token(settings, subject="oidc-user", member_id="ID", roles=[Role.co_chair])
    principal = await verifier.averify(token)
    assert principal.subject == "oidc-user"
    assert principal.roles == frozenset({Role.co_chair})
    assert server.requests == 1
    await verifier.averify(token)
    assert server.requests == 1  # keys are cached

    real_kid = jwt.get_unverified_header(token)["kid"]
    for kid in (real_kid, "unknown-kid", None):
        headers = {"kid": kid} if kid else {}
        forged = jwt.encode(claims(settings), attacker_key, algorithm="RS256", headers=headers)
        with pytest.raises(AuthenticationError):
            await verifier.averify(forged)

    # The kid picks the key, but the algorithm allow-list still comes from settings.
    with pytest.raises(AuthenticationError):
        await verifier.averify(hs256_with_public_pem(settings, attacker_key))


async def test_jwks_app_and_jku_ignored(
    jwks_settings: tuple[CommonSettings, JwksServer], attacker_key: rsa.RSAPrivateKey
) -> None:
    settings, _server = jwks_settings
    transport = httpx.ASGITransport(make_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        token = issue_dev_token(settings, subject="u", member_id=None, roles=[Role.admin])
        assert (await client.get("/co-chair", headers=bearer(token))).status_code == 200
        await _jku_token_is_ignored(client, settings, attacker_key)


async def test_jwks_unreachable_is_401(settings: CommonSettings) -> None:
    server = JwksServer({"keys": []})
    url = server.url
    server.close()  # nothing listens there any more
    verifier = TokenVerifier(settings.model_copy(update={"jwks_url": url}))
    token = issue_dev_token(settings, subject="u", member_id=None, roles=[])
    with pytest.raises(AuthenticationError):
        await verifier.averify(token)


def test_admits_roles_declares_the_roles_of_a_hand_written_rule() -> None:
    @admits_roles(Role.ops, Role.co_chair)
    async def operator() -> None:
        return None

    assert operator.allowed_roles == frozenset({Role.ops, Role.co_chair})  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="at least one role"):
        admits_roles()


# --- verified tokens remembered -----------------------------------------------------------------


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens whose signature and claims were checked (`jwt.decode` called), in order."""
    checked: list[str] = []
    real_decode = jwt.decode

    def counted_decode(token: str, *args: Any, **kwargs: Any) -> Any:
        checked.append(token)
        return real_decode(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counted_decode)
    return checked


def test_a_verified_token_is_remembered_until_its_expiry_and_no_longer(
    settings: CommonSettings, checks: list[str]
) -> None:
    """A caller sends one token with every request: its signature is checked once, and the
    remembered answer never outlives the token's `exp`."""
    verifier = TokenVerifier(settings.model_copy(update={"jwt_leeway_s": 0}))
    expires = int(time.time()) + 2
    token = sign_dev(settings, claims(settings, exp=expires, roles=["member"], member="TH"))
    other = sign_dev(settings, claims(settings, sub="user-2"))

    assert verifier.verify(token).member_id == "TH"
    assert verifier.verify(token).member_id == "TH"
    assert verifier.verify(other).subject == "user-2"
    assert checks == [token, other]

    time.sleep(max(0.0, expires - time.time()) + 0.2)
    with pytest.raises(AuthenticationError):
        verifier.verify(token)
    assert checks == [token, other, token]  # checked again, and refused as expired


def test_a_refused_token_is_not_remembered(
    settings: CommonSettings, attacker_key: rsa.RSAPrivateKey, checks: list[str]
) -> None:
    verifier = TokenVerifier(settings)
    forged = other_rsa_key(settings, attacker_key)
    for _ in range(2):
        with pytest.raises(AuthenticationError):
            verifier.verify(forged)
    assert checks == [forged, forged]
