"""Email: SMTP replies classified; STARTTLS, implicit TLS and login to a real relay."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPDataError,
    SMTPRecipientRefused,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from bali_common.db import utcnow
from bali_notifications.channels import Target, UnusableTarget
from bali_notifications.channels.email import EmailSender, failed_submission
from bali_notifications.deliveries.models import Delivery
from bali_notifications.settings import NotificationsSettings
from bali_notifications.subscriptions.models import Subscription
from notification_harness import (
    RETRY_JITTER,
    RETRY_SCHEDULE,
    Harness,
    ServiceStarter,
    alert_raised,
    assert_delay_follows_schedule,
    due,
    reload,
)
from notification_receivers import TlsFiles, issue_tls, smtp_relay


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def harness(notifications: ServiceStarter) -> AsyncIterator[Harness]:
    async with notifications.started(
        "email", delivery_retry_schedule_s=RETRY_SCHEDULE, delivery_retry_jitter=RETRY_JITTER
    ) as harness:
        yield harness


@pytest.mark.parametrize(
    ("error", "status_code", "permanent"),
    [
        (
            SMTPRecipientsRefused([SMTPRecipientRefused(550, "no such user", "a@b.example")]),
            550,
            True,
        ),
        (
            SMTPRecipientsRefused([SMTPRecipientRefused(451, "try later", "a@b.example")]),
            451,
            False,
        ),
        (SMTPRecipientRefused(550, "mailbox unavailable", "a@b.example"), 550, True),
        (SMTPSenderRefused(553, "sender not allowed", "n@bali.example"), 553, True),
        (SMTPDataError(554, "message refused"), 554, True),
        (SMTPDataError(452, "out of storage"), 452, False),
        # The relay's or our configuration's fault, the same for every message: retried.
        (SMTPAuthenticationError(535, "bad credentials"), 535, False),
        (SMTPSenderRefused(530, "STARTTLS first", "n@bali.example"), 530, False),
        (SMTPResponseException(554, "go away"), 554, False),
        (SMTPConnectError("connection refused"), None, False),
        (SMTPServerDisconnected("lost"), None, False),
        (ConnectionRefusedError(111, "refused"), None, False),
        (TimeoutError(), None, False),
    ],
)
def test_smtp_refusals_of_the_message_fail_for_good_and_the_rest_is_retried(
    error: Exception, status_code: int | None, permanent: bool
) -> None:
    result = failed_submission(error, latency_ms=12)
    assert not result.succeeded
    assert (result.status_code, result.permanent) == (status_code, permanent)
    assert not result.disable_endpoint
    assert result.latency_ms == 12
    assert result.error


async def test_an_email_target_is_an_address_alone_stored_lower_case() -> None:
    sender = EmailSender(NotificationsSettings())
    target = await sender.check_target(Target(email="Focal.Point@Example.ORG"))
    assert target == Target(email="focal.point@example.org")
    refusals = [
        (Target(), "email"),
        (Target(email="not-an-address"), "email"),
        (Target(email="a@b.example", url="https://hooks.example.org/"), "url"),
    ]
    for unusable, field in refusals:
        with pytest.raises(UnusableTarget) as refused:
            await sender.check_target(unusable)
        assert refused.value.field == field
    subscription = Subscription(
        created_by="mei", name="mine", channel="email", email="Mei@MY.example.org"
    )
    assert sender.address_of(subscription) == "mei@my.example.org"


RELAY_USER = "bali-notifications"
RELAY_PASSWORD = "correct horse battery staple"
CO_CHAIR_FOCAL_POINTS = ["ana@au.example.org", "ben@au.example.org", "dewi@id.example.org"]


@pytest.fixture(scope="module")
def relay_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A test CA and the relay's certificate, which names `localhost` only."""
    return issue_tls(tmp_path_factory.mktemp("smtp-tls"))


def relay_settings(
    files: TlsFiles,
    port: int,
    *,
    implicit_tls: bool = False,
    password: str = RELAY_PASSWORD,
    trust_test_ca: bool = True,
) -> dict[str, Any]:
    """How the service reaches the relay: by the name in its certificate, logged in."""
    return {
        "smtp_host": "localhost",
        "smtp_port": port,
        "smtp_starttls": not implicit_tls,
        "smtp_implicit_tls": implicit_tls,
        "smtp_username": RELAY_USER,
        "smtp_password": password,
        "smtp_ca_file": files.ca if trust_test_ca else None,
    }


async def alert_for_co_chairs(harness: Harness) -> tuple[str, list[Delivery]]:
    """An alert whose only emails go to the three co-chair focal points."""
    payload = alert_raised(raised_by="IOM", affected=[])
    event = await harness.publish(payload, subject=payload.alert.alert_id)
    deliveries = await harness.planned(event, 5)
    return payload.alert.alert_id, [d for d in deliveries if d.channel == "email"]


def assert_sent_over_tls_as_the_service(mails: list[Any]) -> None:
    assert sorted(r for mail in mails for r in mail.recipients) == CO_CHAIR_FOCAL_POINTS
    for mail in mails:
        assert mail.tls_version in {"TLSv1.2", "TLSv1.3"}
        assert mail.login == RELAY_USER


async def test_email_goes_over_starttls_with_a_login_to_a_relay_whose_certificate_is_verified(
    harness: Harness, relay_tls: TlsFiles
) -> None:
    with smtp_relay(relay_tls, passwords={RELAY_USER: RELAY_PASSWORD}) as relay:
        alert_id, emails = await alert_for_co_chairs(harness)
        # In clear text the relay answers 530 "STARTTLS first": a relay setting, so retried.
        plain = {"smtp_host": "localhost", "smtp_port": relay.port}
        async with harness.dispatcher_with(**plain) as dispatcher:
            await dispatcher.dispatch_due(now=utcnow())
        refused = [await reload(harness, delivery) for delivery in emails]
        for delivery in refused:
            assert (delivery.status, delivery.last_status_code) == ("retrying", 530)
        # Not told to trust the test CA, the service refuses the certificate (no login sent).
        untrusted = relay_settings(relay_tls, relay.port, trust_test_ca=False)
        async with harness.dispatcher_with(**untrusted) as dispatcher:
            await dispatcher.dispatch_due(now=max(due(d) for d in refused))
        refused = [await reload(harness, delivery) for delivery in emails]
        for delivery in refused:
            assert delivery.status == "retrying"
            assert "certificate verify failed" in (delivery.last_error or "").lower()
        assert relay.messages() == []

        async with harness.dispatcher_with(**relay_settings(relay_tls, relay.port)) as dispatcher:
            await dispatcher.dispatch_due(now=max(due(d) for d in refused))
        mails = relay.for_alert(alert_id)
    assert_sent_over_tls_as_the_service(mails)
    for delivery in emails:
        delivery = await reload(harness, delivery)
        assert (delivery.status, delivery.attempt_count) == ("delivered", 3)


async def test_wrong_smtp_password_is_retried_on_schedule_and_delivered_once_it_is_fixed(
    harness: Harness, relay_tls: TlsFiles
) -> None:
    with smtp_relay(relay_tls, passwords={RELAY_USER: RELAY_PASSWORD}) as relay:
        alert_id, emails = await alert_for_co_chairs(harness)
        wrong = relay_settings(relay_tls, relay.port, password="not the password")
        clock = utcnow()
        async with harness.dispatcher_with(**wrong) as dispatcher:
            await dispatcher.dispatch_due(now=clock)
            first = [await reload(harness, delivery) for delivery in emails]
            for delivery in first:
                # A refused login is the relay's or our fault, never the message's: retried.
                assert delivery.status == "retrying"
                assert delivery.last_status_code == 535
                assert "535" in (delivery.last_error or "")
                assert_delay_follows_schedule(clock, due(delivery), 0)
            clock = max(due(d) for d in first)
            await dispatcher.dispatch_due(now=clock)
            second = [await reload(harness, delivery) for delivery in emails]
            for delivery in second:
                assert (delivery.status, delivery.attempt_count) == ("retrying", 2)
                assert_delay_follows_schedule(clock, due(delivery), 1)
        assert relay.messages() == []

        # The operator fixes the password: the next scheduled attempt goes through.
        async with harness.dispatcher_with(**relay_settings(relay_tls, relay.port)) as dispatcher:
            await dispatcher.dispatch_due(now=max(due(d) for d in second))
        mails = relay.for_alert(alert_id)
    assert_sent_over_tls_as_the_service(mails)
    for delivery in emails:
        detail = await harness.client.get(
            f"/v1/deliveries/{delivery.id}", headers=harness.tokens.ops()
        )
        assert detail.status_code == 200
        body = detail.json()
        assert (body["status"], body["attempt_count"]) == ("delivered", 3)
        assert [(a["succeeded"], a["status_code"]) for a in body["attempts"]] == [
            (False, 535),
            (False, 535),
            (True, 250),
        ]


# aiosmtpd's `auth_require_tls` only knows STARTTLS, so this relay warns that it takes AUTH
# without TLS; every session here is TLS from the first byte, and the test checks each one.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_email_goes_over_implicit_tls_with_a_login(
    harness: Harness, relay_tls: TlsFiles
) -> None:
    with smtp_relay(relay_tls, passwords={RELAY_USER: RELAY_PASSWORD}, implicit_tls=True) as relay:
        alert_id, emails = await alert_for_co_chairs(harness)
        implicit = relay_settings(relay_tls, relay.port, implicit_tls=True)
        async with harness.dispatcher_with(**implicit) as dispatcher:
            await dispatcher.dispatch_due(now=utcnow())
        mails = relay.for_alert(alert_id)
    assert_sent_over_tls_as_the_service(mails)
    for delivery in emails:
        delivery = await reload(harness, delivery)
        assert (delivery.status, delivery.attempt_count) == ("delivered", 1)
