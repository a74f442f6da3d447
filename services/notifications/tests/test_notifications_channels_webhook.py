"""Webhook replies and failures classified, Retry-After read, endpoints a subscription takes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpcore
import pytest
from bali_notifications.channels import Target, UnusableTarget
from bali_notifications.channels.webhook import (
    WebhookSender,
    classify_response,
    failed_request,
    retry_after_seconds,
)
from bali_notifications.secrets_at_rest import SecretBox
from bali_notifications.settings import NotificationsSettings
from bali_notifications.ssrf import BlockedDestination, EgressGuard
from bali_notifications.subscriptions.models import Subscription
from cryptography.fernet import Fernet


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_any_2xx_is_delivered(status: int) -> None:
    result = classify_response(status, {}, latency_ms=8)
    assert result.succeeded
    assert (result.status_code, result.latency_ms, result.error) == (status, 8, None)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_a_failure_retried_and_never_followed(status: int) -> None:
    result = classify_response(status, {"location": "http://127.0.0.1/admin"}, latency_ms=8)
    assert not result.succeeded
    assert not result.permanent
    assert result.error == "redirect not followed (Location: http://127.0.0.1/admin)"


def test_410_gone_fails_for_good_and_disables_the_endpoint() -> None:
    result = classify_response(410, {}, latency_ms=8)
    assert (result.succeeded, result.permanent, result.disable_endpoint) == (False, True, True)
    assert result.error == "410 Gone: endpoint disabled"


@pytest.mark.parametrize("status", [400, 401, 404, 409, 413, 500, 502, 503, 504])
def test_other_statuses_are_retried_on_schedule(status: int) -> None:
    result = classify_response(status, {"retry-after": "60"}, latency_ms=8)
    assert (result.succeeded, result.permanent, result.disable_endpoint) == (False, False, False)
    assert result.error == f"HTTP {status}"
    assert result.retry_after_s is None, "only a 429 sets the pace"


def test_429_carries_the_receivers_retry_after() -> None:
    assert classify_response(429, {"retry-after": "120"}, latency_ms=8).retry_after_s == 120.0
    assert classify_response(429, {}, latency_ms=8).retry_after_s is None
    assert not classify_response(429, {}, latency_ms=8).permanent


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (BlockedDestination("loopback address 127.0.0.1"), "blocked: loopback address 127.0.0.1"),
        (TimeoutError(), "timed out after 1.5 s"),
        (httpcore.ConnectError("connection refused"), "ConnectError: connection refused"),
        (httpcore.ReadTimeout("read timed out"), "ReadTimeout: read timed out"),
        (httpcore.RemoteProtocolError("bad status line"), "RemoteProtocolError: bad status line"),
    ],
)
def test_a_request_without_an_answer_is_retried(error: Exception, message: str) -> None:
    result = failed_request(error, latency_ms=8, timeout_s=1.5)
    assert (result.succeeded, result.permanent, result.status_code) == (False, False, None)
    assert result.error == message


NOW = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
        (format_datetime(NOW - timedelta(hours=1), usegmt=True), 0.0),
        ("soon", None),
        ("-5", None),
        ("²", None),
        ("1" * 40, None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_delay_seconds_or_an_http_date(
    value: str | None, seconds: float | None
) -> None:
    assert retry_after_seconds(value, now=NOW) == seconds


async def test_a_webhook_target_is_a_url_that_passes_the_ssrf_guard() -> None:
    sender = WebhookSender(
        NotificationsSettings(), EgressGuard([]), SecretBox([Fernet.generate_key()])
    )
    try:
        target = await sender.check_target(Target(url="https://93.184.216.34/hooks/bali"))
        assert target == Target(url="https://93.184.216.34/hooks/bali")
        refusals = [
            (Target(), "url"),
            (Target(url="https://10.1.2.3/hook"), "url"),
            (Target(url="http://93.184.216.34/hook"), "url"),
            (Target(url="https://93.184.216.34/hook", email="a@b.example"), "email"),
        ]
        for unusable, field in refusals:
            with pytest.raises(UnusableTarget) as refused:
                await sender.check_target(unusable)
            assert refused.value.field == field
    finally:
        await sender.aclose()
    endpoint = Subscription(
        created_by="x", name="hook", channel="webhook", url="https://a.example/"
    )
    assert sender.address_of(endpoint) == endpoint.id, "each endpoint has its own deliveries"
