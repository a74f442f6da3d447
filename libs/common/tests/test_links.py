"""Signed link tokens: genuine ones verify, anything else is an invalid link, never an error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from bali_common.links import InvalidLinkToken, mint_link_token, verify_link_token
from pydantic import SecretStr

SECRET = SecretStr("a-test-secret")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _token() -> str:
    return mint_link_token(
        SECRET,
        purpose="test",
        subject="alert-1",
        recipient="AU",
        expires_at=NOW + timedelta(hours=1),
    )


def test_a_genuine_token_verifies() -> None:
    claims = verify_link_token([SECRET], _token(), purpose="test", now=NOW)
    assert (claims.subject, claims.recipient) == ("alert-1", "AU")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + "é",  # non-ASCII in the signature
        lambda t: t + "²",
        lambda t: "ü" + t,  # non-ASCII in the body
        lambda t: t.replace(".", ".\udcff"),  # a lone surrogate
        lambda t: t.split(".")[0] + ".",
        lambda t: "." + t.split(".")[1],
        lambda t: t[:-2],
    ],
    ids=[
        "signature-accent",
        "signature-superscript",
        "body",
        "surrogate",
        "no-sig",
        "no-body",
        "cut",
    ],
)
def test_a_mangled_token_is_an_invalid_link(mangle: object) -> None:
    assert callable(mangle)
    with pytest.raises(InvalidLinkToken):
        verify_link_token([SECRET], mangle(_token()), purpose="test", now=NOW)


def test_links_signed_before_a_rotation_verify_while_the_old_secret_is_retiring() -> None:
    old = _token()
    new_secret = SecretStr("the-next-secret")
    claims = verify_link_token([new_secret, SECRET], old, purpose="test", now=NOW)
    assert claims.subject == "alert-1"
    with pytest.raises(InvalidLinkToken):
        verify_link_token([new_secret], old, purpose="test", now=NOW)
