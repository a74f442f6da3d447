"""Email headers decode to the exact text: subjects in every script, at every fold, and From."""

from __future__ import annotations

from collections.abc import AsyncIterator
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
import pytest_asyncio
from aiosmtplib.email import flatten_message
from bali_common.db import utcnow
from bali_notifications import mailheaders
from bali_notifications.settings import NotificationsSettings
from notification_harness import Harness, ServiceStarter, alert_raised
from notification_receivers import MailSink
from pydantic import ValidationError

TITLES = [
    "Biển Đông / Laut Timor ⚓",
    "ทะเลอันดามัน  เรือล่ม สองช่องว่าง",
    "海上遇险\uff1a约 120 人 / Kapal terbalik di Laut Jawa",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467 family of three adrift, e\u0301 combining, Ωμέγα",
    "Perahu \u201cHarapan\u201d tenggelam \u2014 120 orang di Selat Sunda",
    "An ASCII title that reads =?utf-8?q?like_an_encoded_word?= but is not",
    "Kapal " * 26 + "⚓",  # long: several encoded-words
]
# Each title behind 0..N characters of padding, so that its non-ASCII part falls on every
# column around the 78-character fold of the Subject line.
NEAR_THE_FOLD = [("x" * pad) + " Biển Đông / Laut Timor ⚓" for pad in range(30, 62, 2)]


def sent(message: EmailMessage) -> EmailMessage:
    """The message as a reader parses it: flattened as aiosmtplib sends it, then parsed."""
    raw = flatten_message(message)
    assert all(len(line) <= mailheaders.LINE for line in raw.split(b"\r\n")[:40])
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


@pytest.mark.parametrize("title", TITLES + NEAR_THE_FOLD + ["plain title", "x" * 300])
@pytest.mark.parametrize("prefix", ["", "[EXTREME] Alert raised: ", "[MODERATE] Alert updated: "])
def test_a_subject_decodes_to_the_exact_text(prefix: str, title: str) -> None:
    message = EmailMessage()
    message.set_raw("Subject", mailheaders.unstructured("Subject", prefix + title))
    message["To"] = "reader@example.org"
    message.set_content("body")
    assert str(sent(message)["Subject"]) == prefix + title


def test_a_short_ascii_subject_goes_as_it_is() -> None:
    assert mailheaders.unstructured("Subject", "[MINOR] Alert resolved: x") == (
        "[MINOR] Alert resolved: x"
    )


@pytest.mark.parametrize(
    "display_name",
    [
        "Bali Process Notifications",
        'Secretariat "Bali", RSO',
        "back\\slash",
        "Thông báo Tiến trình Bali",
        "ทะเลอันดามัน",
        "=?utf-8?q?x?=",
        "",
    ],
)
def test_a_from_display_name_decodes_to_the_exact_text(display_name: str) -> None:
    message = EmailMessage()
    message.set_raw(
        "From", mailheaders.mailbox("From", display_name, "notifications@bali-process.example")
    )
    message["To"] = "reader@example.org"
    message.set_content("body")
    [mailbox] = sent(message)["From"].addresses
    assert (mailbox.display_name, mailbox.addr_spec) == (
        display_name,
        "notifications@bali-process.example",
    )


def test_a_from_that_cannot_be_sent_exactly_is_refused_at_start_up() -> None:
    """Readers split on the white space between encoded-words in a display name, so a name
    longer than one word cannot be sent exactly."""
    long_name = "Thông báo Tiến trình Bali — Biển Đông / Laut Timor"
    with pytest.raises(ValidationError, match="one encoded-word"):
        NotificationsSettings(smtp_from=f"{long_name} <notifications@bali-process.example>")
    with pytest.raises(ValidationError, match="ASCII address"):
        NotificationsSettings(smtp_from="Notifications <nötifications@bali-process.example>")
    NotificationsSettings(smtp_from="Thông báo Bali <notifications@bali-process.example>")


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def harness(notifications: ServiceStarter) -> AsyncIterator[Harness]:
    async with notifications.started("email-headers") as harness:
        yield harness


async def test_every_email_reaches_its_readers_with_the_exact_subject_and_from(
    harness: Harness, smtp_server: MailSink
) -> None:
    """As the real SMTP server receives them, parsed by the standard library: every title,
    every email (co-chairs' and the affected member's focal points)."""
    sender = "Thông báo Bali"
    alerts = [alert_raised(title=title) for title in TITLES + NEAR_THE_FOLD]
    events = [await harness.publish(a, subject=a.alert.alert_id) for a in alerts]
    for event in events:
        await harness.planned(event, 7)
    async with harness.dispatcher_with(smtp_from=f"{sender} <alerts@bali-process.example>") as d:
        await d.dispatch_due(now=utcnow())
    received = 0
    for payload in alerts:
        mails = smtp_server.for_alert(payload.alert.alert_id)
        assert len(mails) == 4, payload.alert.title
        for mail in mails:
            assert str(mail.message["Subject"]) == f"[EXTREME] Alert raised: {payload.alert.title}"
            [mailbox] = mail.message["From"].addresses
            assert (mailbox.display_name, mailbox.addr_spec) == (
                sender,
                "alerts@bali-process.example",
            )
            assert payload.alert.title in mail.text
            received += 1
    assert received == 4 * len(alerts)
