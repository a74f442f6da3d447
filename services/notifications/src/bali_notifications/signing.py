"""Standard Webhooks signatures: `v1,` + base64 HMAC-SHA256 over `id.timestamp.body`."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence

# https://www.standardwebhooks.com, signature scheme v1: a secret is `whsec_` + base64 of
# 32 random bytes, the decoded bytes being the HMAC key. During a rotation the header
# carries one signature per active secret, space-separated; a receiver accepts any of them.
SECRET_PREFIX = "whsec_"  # noqa: S105 - the scheme's marker, not a secret
_SECRET_BYTES = 32


class InvalidSecret(ValueError):
    """Not a `whsec_` secret with a base64 key."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidSecret("webhook secrets start with whsec_")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error as error:
        raise InvalidSecret("webhook secret is not base64") from error
    if not key:
        raise InvalidSecret("webhook secret is empty")
    return key


def sign(secret: str, *, message_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature of the exact bytes sent."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_header(
    secrets_in_use: Sequence[str], *, message_id: str, timestamp: int, body: bytes
) -> str:
    """The `webhook-signature` value: every active secret's signature, space-separated."""
    if not secrets_in_use:
        raise InvalidSecret("an endpoint needs at least one secret")
    return " ".join(
        sign(secret, message_id=message_id, timestamp=timestamp, body=body)
        for secret in secrets_in_use
    )


def webhook_headers(
    secrets_in_use: Sequence[str], *, message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(
            secrets_in_use, message_id=message_id, timestamp=timestamp, body=body
        ),
    }
