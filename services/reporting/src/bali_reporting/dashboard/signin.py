"""Who is looking at the dashboard: the same bearer tokens as the API, carried in a cookie.

A browser cannot attach an Authorization header to a page load, so the dev sign-in page
takes a token and keeps it in an HttpOnly, SameSite=Strict cookie (no script can read it,
no other site can send it). Every page accepts the cookie or an Authorization header and
verifies the token exactly as the API does (`bali_common.auth.TokenVerifier` and the
per-member admission); a missing, bad or expired token sends the browser back to sign-in
with a reason, never an error page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal
from urllib.parse import quote, urlsplit

import jwt
from bali_common.auth import (
    AuthenticationError,
    AuthorizationError,
    Principal,
    PrincipalAdmission,
    Role,
    TokenVerifier,
)
from bali_common.deps import RuntimeDep
from bali_common.visibility import AlertViewer, alert_viewer, is_acting_co_chair
from fastapi import Depends, Request
from fastapi.responses import RedirectResponse

from bali_reporting.projections.members import co_chair_members

COOKIE = "bali_dashboard_token"
#: Why the sign-in page is shown; the page words each one (no caller text is echoed back).
Reason = Literal["required", "invalid", "expired", "forbidden", "signed-out", "cross-site"]
READER_ROLES = (Role.member, Role.co_chair, Role.ops)


class SignInRequired(Exception):
    """The page needs a valid token of a reader; the handler redirects to sign-in."""

    def __init__(self, reason: Reason, *, back_to: str = "/") -> None:
        super().__init__(reason)
        self.reason = reason
        self.back_to = back_to


@dataclass(frozen=True)
class DashboardUser:
    principal: Principal
    viewer: AlertViewer
    #: May see the operations pages (response times, deliveries, pipeline), like `Operator`.
    operator: bool

    @property
    def label(self) -> str:
        who = self.principal.name or self.principal.subject
        member = f" ({self.principal.member_id})" if self.principal.member_id else ""
        return f"{who}{member}"


def safe_next(target: str | None) -> str:
    """A local path to return to after sign-in: never another host (`//x`, `/\\x`, `http:`)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    if len(target) > 2000 or any(ord(c) < 32 for c in target):
        return "/"
    return target


def same_origin(request: Request) -> bool:
    """A form posted from another site (login CSRF: signing a victim in as the attacker) is
    refused. Browsers send `Origin` with every POST; a client that sends none is no browser
    on another site. Hosts are compared, not schemes: behind an ingress that ends TLS the
    service may see http where the browser saw https."""
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.url.netloc


def _verifier(request: Request) -> TokenVerifier:
    verifier = getattr(request.app.state, "token_verifier", None)
    if not isinstance(verifier, TokenVerifier):
        raise RuntimeError("app.state.token_verifier is not set to a TokenVerifier")
    return verifier


def _expired(token: str) -> bool:
    """Only to word the message: the token was refused already, its claims are not trusted."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return False
    expiry = claims.get("exp")
    return isinstance(expiry, int | float) and expiry < datetime.now(UTC).timestamp()


async def verify(request: Request, token: str) -> Principal:
    """The API's verification and admission; `SignInRequired` says why a token is refused."""
    try:
        principal = await _verifier(request).averify(token)
    except AuthenticationError:
        raise SignInRequired("expired" if _expired(token) else "invalid") from None
    admit: PrincipalAdmission | None = getattr(request.app.state, "admit_principal", None)
    if admit is not None:
        await admit(principal)
    if not principal.allows(*READER_ROLES):
        raise SignInRequired("forbidden")
    return principal


def presented_token(request: Request) -> str | None:
    header = request.headers.get("Authorization")
    if header:
        scheme, _, token = header.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else ""
    return request.cookies.get(COOKIE)


async def dashboard_user(request: Request, runtime: RuntimeDep) -> DashboardUser:
    """The signed-in viewer. The directory lookup takes a session of its own, closed at once:
    the live board's stream lives for minutes and must not hold a connection all along
    (SQLite has one)."""
    back_to = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    token = presented_token(request)
    if not token:
        raise SignInRequired("required" if token is None else "invalid", back_to=back_to)
    try:
        principal = await verify(request, token)
    except SignInRequired as refused:
        refused.back_to = back_to
        raise
    except AuthorizationError:
        raise SignInRequired("forbidden", back_to=back_to) from None
    async with runtime.sessions() as session:
        co_chairs = await co_chair_members(session)
    return DashboardUser(
        principal=principal,
        viewer=alert_viewer(principal, co_chair_members=co_chairs),
        operator=principal.allows(Role.ops) or is_acting_co_chair(principal, co_chairs),
    )


User = Annotated[DashboardUser, Depends(dashboard_user)]


def set_token_cookie(response: RedirectResponse, request: Request, token: str) -> None:
    """HttpOnly and SameSite=Strict; Secure whenever the page came over HTTPS. It lives no
    longer than the token it holds."""
    try:
        expiry = jwt.decode(token, options={"verify_signature": False}).get("exp")
    except jwt.PyJWTError:
        expiry = None
    max_age = None
    if isinstance(expiry, int | float):
        max_age = max(0, int(expiry - datetime.now(UTC).timestamp()))
    response.set_cookie(
        COOKIE,
        token,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def to_sign_in(request: Request, refused: SignInRequired) -> RedirectResponse:
    """303 to the sign-in page, forgetting a cookie that no longer works."""
    target = f"/sign-in?reason={refused.reason}"
    if refused.back_to != "/":
        target += f"&next={quote(safe_next(refused.back_to), safe='')}"
    response = RedirectResponse(target, status_code=303)
    if request.cookies.get(COOKIE) is not None and refused.reason != "forbidden":
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response
