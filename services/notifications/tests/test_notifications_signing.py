"""Standard Webhooks signatures, checked against the spec's vector and an independent verifier."""

from __future__ import annotations

import time

import pytest
from bali_notifications.signing import (
    InvalidSecret,
    new_secret,
    sign,
    signature_header,
    webhook_headers,
)
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

# The example of the Standard Webhooks specification (and its reference libraries' tests).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signature_matches_the_specification_vector() -> None:
    assert (
        sign(SPEC_SECRET, message_id=SPEC_ID, timestamp=SPEC_TIMESTAMP, body=SPEC_BODY)
        == SPEC_SIGNATURE
    )


def test_fresh_signature_verifies_with_the_reference_library() -> None:
    secret = new_secret()
    body = b'{"type":"alert.raised","data":{"alert":"a-1"}}'
    headers = webhook_headers([secret], message_id="d-1", timestamp=int(time.time()), body=body)
    assert Webhook(secret).verify(body, headers) == {
        "type": "alert.raised",
        "data": {"alert": "a-1"},
    }


def test_tampered_body_or_other_secret_is_rejected_by_the_reference_library() -> None:
    secret = new_secret()
    body = b'{"n":1}'
    headers = webhook_headers([secret], message_id="d-2", timestamp=int(time.time()), body=body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"n":2}', headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


def test_during_rotation_both_secrets_sign_and_each_verifies_alone() -> None:
    old, new = new_secret(), new_secret()
    body = b"{}"
    now = int(time.time())
    header = signature_header([old, new], message_id="d-3", timestamp=now, body=body)
    assert len(header.split(" ")) == 2
    headers = {"webhook-id": "d-3", "webhook-timestamp": str(now), "webhook-signature": header}
    Webhook(old).verify(body, headers)
    Webhook(new).verify(body, headers)


def test_secrets_have_the_whsec_prefix_and_enough_entropy() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert secret != new_secret()
    with pytest.raises(InvalidSecret):
        sign("not-a-secret", message_id="x", timestamp=1, body=b"")
    with pytest.raises(InvalidSecret):
        signature_header([], message_id="x", timestamp=1, body=b"")
