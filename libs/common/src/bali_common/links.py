"""Signed, expiring link tokens (one-click acknowledge in emails), verifiable without login.

The issuer (notifications, when it renders an email) and the verifier
(consultation) share `link_signing_secret`; single use is enforced by the
verifier, which records each token id it accepted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import datetime
from uuid import uuid4

from pydantic import BaseModel, SecretStr, ValidationError

#: `purpose` of the one-click acknowledge links in alert emails.
ACKNOWLEDGE_LINK_PURPOSE = "alert.acknowledge"


class InvalidLinkToken(ValueError):
    """Tampered, expired, malformed or meant for another purpose."""


class ExpiredLinkToken(InvalidLinkToken):
    """Genuine but past its expiry: the user needs another way in, not a security warning."""


class LinkClaims(BaseModel):
    purpose: str
    subject: str
    recipient: str
    expires_at: int
    token_id: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: SecretStr, body: str) -> str:
    key = secret.get_secret_value().encode()
    return _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())


def _same_signature(given: str, expected: str) -> bool:
    """Constant-time, on bytes: `compare_digest` raises TypeError for str holding non-ASCII."""
    return hmac.compare_digest(given.encode(), expected.encode())


def mint_link_token(
    secret: SecretStr,
    *,
    purpose: str,
    subject: str,
    recipient: str,
    expires_at: datetime,
    token_id: str | None = None,
) -> str:
    claims = LinkClaims(
        purpose=purpose,
        subject=subject,
        recipient=recipient,
        expires_at=int(expires_at.timestamp()),
        token_id=token_id or uuid4().hex,
    )
    body = _b64(claims.model_dump_json().encode())
    return f"{body}.{_signature(secret, body)}"


def verify_link_token(
    secrets: Sequence[SecretStr], token: str, *, purpose: str, now: datetime
) -> LinkClaims:
    """Verify against each of `secrets` (the current one first, then those being retired):
    links minted before a rotation keep working until they expire."""
    # Minted tokens are base64url and a dot: anything else (the token is whatever the caller
    # put in the URL or form) is malformed, answered like any other invalid link.
    if not token.isascii():
        raise InvalidLinkToken("malformed token")
    body, _, signature = token.partition(".")
    if not body or not signature:
        raise InvalidLinkToken("malformed token")
    if not any(_same_signature(signature, _signature(secret, body)) for secret in secrets):
        raise InvalidLinkToken("bad signature")
    try:
        claims = LinkClaims.model_validate(json.loads(_unb64(body)))
    except (binascii.Error, ValueError, ValidationError) as error:
        raise InvalidLinkToken("malformed token") from error
    if claims.purpose != purpose:
        raise InvalidLinkToken("token is for another purpose")
    if now.timestamp() >= claims.expires_at:
        raise ExpiredLinkToken("token expired")
    return claims
