"""Bearer JWT authentication and role-based authorization shared by every service."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

import anyio.to_thread
import jwt
from cachetools import TLRUCache
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from bali_common.settings import CommonSettings

__all__ = [
    "AuthenticationError",
    "AuthorizationError",
    "CurrentPrincipal",
    "Principal",
    "Role",
    "TokenVerifier",
    "admits_roles",
    "bearer_scheme",
    "dev_jwks",
    "get_principal",
    "issue_dev_token",
    "jwk_thumbprint",
    "load_or_create_dev_key",
    "public_jwk",
    "public_route",
    "require_roles",
]

_log = logging.getLogger(__name__)

DEV_ALGORITHM = "RS256"
_DEV_KEY_BITS = 2048
# Asymmetric only: a symmetric algorithm next to a public key is the classic RS/HS confusion
# (RFC 8725 §2.1, §3.1), and "none" is never acceptable here (RFC 8725 §3.2).
_ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_REQUIRED_CLAIMS = ["exp", "iss", "aud", "sub"]
_RESERVED_CLAIMS = frozenset(
    {"iss", "aud", "iat", "nbf", "exp", "sub", "jti", "member", "roles", "name", "email"}
)
# Bounds work done on unauthenticated input before any signature is checked.
_MAX_TOKEN_CHARS = 8192
_MAX_KID_CHARS = 256
# Compact JWS only (three segments); JWE or JSON serialisation is refused outright.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_\-]+=*\.[A-Za-z0-9_\-]*=*\.[A-Za-z0-9_\-]*=*")
_JWKS_TIMEOUT_S = 5.0
#: A verified token is remembered this long at most, and never past its `exp`: a caller sends
#: the same token with every request, and checking an RS256 signature and the claims again
#: costs more than parsing the rest of a small request. A key withdrawn from the JWKS stops
#: being accepted within this time.
_VERIFIED_FOR_S = 60.0
#: Verified tokens remembered at once (only tokens that verified are kept).
_VERIFIED_TOKENS = 4096


class Role(StrEnum):
    """Roles carried in the `roles` claim; anything else in that claim is ignored."""

    member = "member"
    co_chair = "co_chair"
    ops = "ops"
    admin = "admin"


class Principal(BaseModel):
    """The authenticated caller, built only from a token whose signature and claims checked out."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    subject: str = Field(min_length=1)
    member_id: str | None = None
    roles: frozenset[Role] = frozenset()
    name: str | None = None
    email: str | None = None

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Principal:
        """Map verified claims; unknown roles are dropped so an IdP can carry roles of other apps.

        Raises `ValueError` (pydantic's `ValidationError` included) on claims of the wrong type.
        """
        raw_roles = claims.get("roles")
        if raw_roles is None:
            raw_roles = []
        if not isinstance(raw_roles, list):
            # A bare string would otherwise be iterated character by character.
            raise ValueError("roles claim must be a list")
        known = {role.value for role in Role}
        roles = frozenset(Role(r) for r in raw_roles if isinstance(r, str) and r in known)
        return cls.model_validate(
            {
                "subject": claims.get("sub"),
                "member_id": claims.get("member"),
                "roles": roles,
                "name": claims.get("name"),
                "email": claims.get("email"),
            }
        )

    def has_role(self, *roles: Role) -> bool:
        """Literal membership: True when the principal holds any of `roles` (admin not implied)."""
        return not self.roles.isdisjoint(roles)

    @property
    def is_admin(self) -> bool:
        return Role.admin in self.roles

    def allows(self, *roles: Role) -> bool:
        """The `require_roles` rule, for checks inside a handler: any of `roles`, or admin."""
        return self.is_admin or self.has_role(*roles)


class AuthenticationError(Exception):
    """No usable credentials (401); `problems.py` renders it, with `headers` as the challenge."""

    status_code: ClassVar[int] = 401
    title: ClassVar[str] = "Unauthorized"

    def __init__(self, detail: str = "Invalid bearer token", *, missing: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        # RFC 6750 §3: no error code when the request carried no credentials at all.
        challenge = "Bearer" if missing else 'Bearer error="invalid_token"'
        self.headers: dict[str, str] = {"WWW-Authenticate": challenge}


class AuthorizationError(Exception):
    """Authenticated but lacking a role (403): a new token would not help, unlike a 401."""

    status_code: ClassVar[int] = 403
    title: ClassVar[str] = "Forbidden"

    def __init__(self, detail: str = "Insufficient role") -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers: dict[str, str] = {}


# --- keys -------------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_uint(value: int) -> str:
    return _b64url(value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def jwk_thumbprint(public_key: rsa.RSAPublicKey) -> str:
    """RFC 7638 thumbprint, used as `kid` so the id is derived from, and stable with, the key."""
    numbers = public_key.public_numbers()
    # RFC 7638 §3.2: required members only, lexicographic order, no whitespace.
    canonical = json.dumps(
        {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)},
        separators=(",", ":"),
        sort_keys=True,
    )
    return _b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def public_jwk(public_key: rsa.RSAPublicKey) -> dict[str, str]:
    """The public half as a JWK, for a dev JWKS endpoint or tests."""
    numbers = public_key.public_numbers()
    return {
        "kty": "RSA",
        "use": "sig",
        "alg": DEV_ALGORITHM,
        "kid": jwk_thumbprint(public_key),
        "n": _b64url_uint(numbers.n),
        "e": _b64url_uint(numbers.e),
    }


def _parse_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < _DEV_KEY_BITS:
        # RFC 8725 §3.5: keys must have sufficient strength.
        raise ValueError(f"dev signing key must be RSA >= {_DEV_KEY_BITS} bits")
    return key


def load_or_create_dev_key(path: Path) -> rsa.RSAPrivateKey:
    """Load the dev signing key, creating it if missing; racing processes all end with one key.

    The new key is written in full to a 0600 temp file beside `path` and published with
    `os.link`, which fails if `path` already exists; the loser discards its key and reads the
    winner's. Readers therefore never see a partial file and two keys never coexist.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=_DEV_KEY_BITS)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as tmp:  # mkstemp creates the file with mode 0600
                tmp.write(pem)
                tmp.flush()
                os.fsync(tmp.fileno())
            # If another process published first, its key wins and ours is discarded.
            with contextlib.suppress(FileExistsError):
                os.link(tmp_name, path)
        finally:
            os.unlink(tmp_name)
    return _parse_private_key(path.read_bytes())


def dev_jwks(settings: CommonSettings) -> dict[str, list[dict[str, str]]]:
    """JWKS document of the dev key, so a local stack can exercise the `jwks_url` path."""
    key = load_or_create_dev_key(settings.resolved_dev_key_path())
    return {"keys": [public_jwk(key.public_key())]}


def issue_dev_token(
    settings: CommonSettings,
    *,
    subject: str,
    member_id: str | None,
    roles: Iterable[Role],
    name: str | None = None,
    email: str | None = None,
    ttl: timedelta = timedelta(hours=12),
    extra_claims: Mapping[str, Any] | None = None,
) -> str:
    """Sign a token with the local dev key, for development, tests and the CLI.

    `extra_claims` may not override registered or principal claims, so a token always says
    what the keyword arguments say.
    """
    if ttl <= timedelta(0):
        raise ValueError("ttl must be positive")
    extra = dict(extra_claims or {})
    clash = _RESERVED_CLAIMS.intersection(extra)
    if clash:
        raise ValueError(f"extra_claims may not set {sorted(clash)}")
    key = load_or_create_dev_key(settings.resolved_dev_key_path())
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        **extra,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": subject,
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
        "jti": uuid.uuid4().hex,
        "roles": sorted({Role(r).value for r in roles}),
    }
    for claim, value in (("member", member_id), ("name", name), ("email", email)):
        if value is not None:
            claims[claim] = value
    return jwt.encode(
        claims,
        key,
        algorithm=DEV_ALGORITHM,
        headers={"kid": jwk_thumbprint(key.public_key()), "typ": "JWT"},
    )


# --- verification -----------------------------------------------------------------------------


class TokenVerifier:
    """Verifies bearer tokens against the configured JWKS (OIDC) or, if none, the dev key.

    Everything security-relevant comes from settings, nothing from the token: the algorithm
    allow-list, the key source, issuer and audience. The only header value consulted is `kid`,
    and only to pick a key out of the configured JWKS; `jku`, `x5u`, `jwk` and `x5c` are never
    read, so a token cannot point us at a URL or bring its own key (RFC 8725 §3.10).
    """

    def __init__(self, settings: CommonSettings) -> None:
        configured = tuple(settings.jwt_algorithms)
        rejected = [alg for alg in configured if alg not in _ASYMMETRIC_ALGORITHMS]
        if not configured or rejected:
            # RFC 8725 §3.1/§3.2: a fixed allow-list of asymmetric algorithms only.
            raise ValueError(f"jwt_algorithms must list asymmetric algorithms, got {configured}")
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._leeway = settings.jwt_leeway_s
        self._jwks: jwt.PyJWKClient | None = None
        self._dev_key: rsa.RSAPublicKey | None = None
        if settings.jwks_url:
            self._algorithms = configured
            self._jwks = jwt.PyJWKClient(
                settings.jwks_url, cache_keys=True, timeout=_JWKS_TIMEOUT_S
            )
        else:
            if DEV_ALGORITHM not in configured:
                raise ValueError(f"the dev key needs {DEV_ALGORITHM} in jwt_algorithms")
            # RFC 8725 §3.1: one key, one algorithm.
            self._algorithms = (DEV_ALGORITHM,)
            key = load_or_create_dev_key(settings.resolved_dev_key_path())
            self._dev_key = key.public_key()
        # Token -> (caller, monotonic time it stops being trusted without a new check).
        self._verified: TLRUCache[str, tuple[Principal, float]] = TLRUCache(
            maxsize=_VERIFIED_TOKENS, ttu=_trusted_until, timer=time.monotonic
        )
        self._verified_lock = threading.Lock()  # `verify` also runs in worker threads

    @property
    def uses_jwks(self) -> bool:
        return self._jwks is not None

    def verify(self, token: str) -> Principal:
        """Verify signature and claims; blocking when a JWKS fetch is due, so prefer `averify`."""
        remembered = self._remembered(token)
        if remembered is not None:
            return remembered
        try:
            principal, expires_at = self._verify(token)
        except AuthenticationError:
            raise
        except jwt.PyJWKClientConnectionError as exc:
            _log.warning("JWKS fetch failed: %s", type(exc).__name__)
            raise AuthenticationError("Signing keys unavailable") from None
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            # Type name only: messages may quote header values chosen by the caller.
            _log.debug("bearer token rejected: %s", type(exc).__name__)
            raise AuthenticationError() from None
        trusted_for = min(_VERIFIED_FOR_S, expires_at + self._leeway - time.time())
        if trusted_for > 0:
            with self._verified_lock:
                self._verified[token] = (principal, time.monotonic() + trusted_for)
        return principal

    async def averify(self, token: str) -> Principal:
        """`verify` for async code: a JWKS lookup may do blocking I/O, so it runs in a thread
        (a token verified lately needs neither)."""
        if self._jwks is None:
            return self.verify(token)
        remembered = self._remembered(token)
        if remembered is not None:
            return remembered
        return await anyio.to_thread.run_sync(self.verify, token)

    def _remembered(self, token: str) -> Principal | None:
        with self._verified_lock:
            found = self._verified.get(token)
        return found[0] if found is not None else None

    def _verify(self, token: str) -> tuple[Principal, float]:
        """The caller and the token's `exp` (seconds since the epoch)."""
        if len(token) > _MAX_TOKEN_CHARS or not _COMPACT_JWS.fullmatch(token):
            raise AuthenticationError()
        key: jwt.PyJWK | rsa.RSAPublicKey
        if self._jwks is not None:
            kid = jwt.get_unverified_header(token).get("kid")
            # RFC 8725 §3.10: kid is attacker-controlled; it is only compared with the kids
            # of the configured JWKS, never used as a path, query or URL.
            if not isinstance(kid, str) or not 0 < len(kid) <= _MAX_KID_CHARS:
                raise AuthenticationError()
            key = self._jwks.get_signing_key(kid)
        else:
            assert self._dev_key is not None
            key = self._dev_key  # the dev key is the only key: kid is ignored
        claims = jwt.decode(
            token,
            key,
            # RFC 8725 §3.1: the allow-list comes from configuration, never from the header.
            algorithms=list(self._algorithms),
            # RFC 8725 §3.8/§3.9: issuer and audience are always required and checked.
            issuer=self._issuer,
            audience=self._audience,
            leeway=self._leeway,
            options={"require": _REQUIRED_CLAIMS, "verify_signature": True},
        )
        return Principal.from_claims(claims), float(claims["exp"])


def _trusted_until(_token: str, verified: tuple[Principal, float], _now: float) -> float:
    return verified[1]


# --- FastAPI ----------------------------------------------------------------------------------

#: `app.state.admit_principal`: called with every verified caller before its route runs (the
#: per-member rate limit); it raises to refuse.
PrincipalAdmission = Callable[[Principal], Awaitable[None]]

bearer_scheme = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    description="Access token from the OpenID Connect provider (locally: signed by the dev key)",
)


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
) -> Principal:
    """FastAPI dependency: the verified caller, or `AuthenticationError`.

    The app factory must set `app.state.token_verifier` to a `TokenVerifier` built once at
    startup; building one per request would re-read the key file and lose the JWKS cache.
    """
    if credentials is None:
        if request.headers.get("Authorization"):
            raise AuthenticationError("Authorization header must be 'Bearer <token>'")
        raise AuthenticationError("Bearer token required", missing=True)
    verifier = getattr(request.app.state, "token_verifier", None)
    if not isinstance(verifier, TokenVerifier):
        # A wiring bug, not a client error: fail loudly (500) rather than deny as 401.
        raise RuntimeError("app.state.token_verifier is not set to a TokenVerifier")
    principal = await verifier.averify(credentials.credentials)
    admit: PrincipalAdmission | None = getattr(request.app.state, "admit_principal", None)
    if admit is not None:
        await admit(principal)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def get_optional_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
) -> Principal | None:
    """The caller if a token came (it must then be valid), None for an anonymous call.

    Only public documents and signed links may accept anonymous callers.
    """
    if credentials is None and not request.headers.get("Authorization"):
        return None
    return await get_principal(request, credentials)


OptionalPrincipal = Annotated[Principal | None, Depends(get_optional_principal)]


def require_roles(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """Dependency factory: the principal if it holds any of `roles` (admin always passes).

    Use as `Annotated[Principal, Depends(require_roles(Role.co_chair))]` or in a route's
    `dependencies=[...]`.
    """
    if not roles:
        raise ValueError("require_roles needs at least one role")
    required = frozenset(roles)
    names = ", ".join(sorted(role.value for role in required))

    async def dependency(principal: CurrentPrincipal) -> Principal:
        if not principal.allows(*required):
            raise AuthorizationError(f"Requires one of the roles: {names}")
        return principal

    dependency.__name__ = f"require_roles_{'_'.join(sorted(r.value for r in required))}"
    dependency.allowed_roles = required  # type: ignore[attr-defined]
    return dependency


DependencyT = TypeVar("DependencyT", bound=Callable[..., Awaitable[Any]])


def admits_roles(*roles: Role) -> Callable[[DependencyT], DependencyT]:
    """Declares the roles a hand-written authorization dependency may admit (admin always
    passes), for a rule beyond roles alone (an acting co-chair: the role *and* a member the
    directory lists as co-chair). Like `require_roles`, it names who may call the route; a
    caller holding none of `roles` must be refused by the dependency itself."""
    if not roles:
        raise ValueError("admits_roles needs at least one role")

    def declare(dependency: DependencyT) -> DependencyT:
        dependency.allowed_roles = frozenset(roles)  # type: ignore[attr-defined]
        return dependency

    return declare


def public_route(reason: str) -> Callable[[], Awaitable[None]]:
    """Dependency marking a route that answers without a bearer token, naming what authorises
    it instead (public content, a signed link): every route declares its authorization, and
    this is the declaration that none is needed."""

    async def dependency() -> None:
        return None

    dependency.__name__ = "public_route"
    dependency.public_reason = reason  # type: ignore[attr-defined]
    return dependency
