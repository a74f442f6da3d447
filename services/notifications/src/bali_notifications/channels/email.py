"""Email over SMTP: one message per delivery, to one address, with the alert's headers."""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

import aiosmtplib

from bali_notifications import mailheaders
from bali_notifications.channels import (
    Notification,
    SendResult,
    Target,
    UnusableTarget,
    elapsed_ms,
)
from bali_notifications.fields import is_email_address
from bali_notifications.rendering import Rendered
from bali_notifications.settings import NotificationsSettings
from bali_notifications.subscriptions.models import Subscription

#: RFC 4954 replies about our own session (login required, credentials invalid, mechanism
#: too weak, encryption required), whatever the command that drew them.
_SESSION_REPLIES = frozenset({530, 534, 535, 538})


class EmailSender:
    """One SMTP session per message: simple, and a broken connection never poisons the next."""

    def __init__(self, settings: NotificationsSettings) -> None:
        self._settings = settings
        display_name, address = parseaddr(settings.smtp_from)
        self._from = mailheaders.mailbox("From", display_name, address)
        self._domain = address.rpartition("@")[2] or "bali-process.example"
        # None: aiosmtplib's default context, which verifies against the system CAs. Either
        # way the certificate chain and the host name are checked; nothing turns that off.
        self._tls_context = (
            ssl.create_default_context(cafile=str(settings.smtp_ca_file))
            if settings.smtp_ca_file
            else None
        )

    async def check_target(self, target: Target) -> Target:
        if not target.email:
            raise UnusableTarget("email", "required for the email channel")
        if target.url is not None:
            raise UnusableTarget("url", "only webhook subscriptions have a URL")
        if not is_email_address(target.email):
            raise UnusableTarget("email", "not an email address")
        return Target(email=target.email.lower())

    def address_of(self, subscription: Subscription) -> str:
        return (subscription.email or "").lower()

    async def send(self, notification: Notification, *, now: datetime) -> SendResult:
        delivery = notification.job.delivery
        headers = {
            "X-Bali-Delivery-Id": delivery.id,
            "X-Bali-Event-Id": delivery.source_event_id,
            "X-Bali-Event-Type": delivery.event_type,
        }
        if delivery.alert_id:
            headers["X-Bali-Alert-Id"] = delivery.alert_id
        if delivery.severity:
            headers["X-Bali-Severity"] = delivery.severity
        message = self.message(
            delivery_id=delivery.id,
            to=delivery.recipient,
            rendered=notification.rendered,
            headers=headers,
            now=now,
        )
        return await self.submit(message)

    async def aclose(self) -> None:
        """Nothing stays open: every message has its own session."""

    def message(
        self,
        *,
        delivery_id: str,
        to: str,
        rendered: Rendered,
        headers: Mapping[str, str],
        now: datetime,
    ) -> EmailMessage:
        message = EmailMessage()
        # Encoded and folded by `mailheaders`: the standard library's own folding loses
        # spaces in non-ASCII text (see there).
        message.set_raw("From", self._from)
        message["To"] = to
        message.set_raw("Subject", mailheaders.unstructured("Subject", rendered.subject))
        message["Date"] = format_datetime(now)
        # Stable per delivery: a resend after a crash is recognisably the same message.
        message["Message-ID"] = f"<{delivery_id}@{self._domain}>"
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834 section 5
        for name, value in headers.items():
            message[name] = value
        message.set_content(rendered.text)
        message.add_alternative(rendered.html, subtype="html")
        return message

    async def submit(self, message: EmailMessage) -> SendResult:
        """Hand the message to the relay, over TLS and logged in as the settings say."""
        settings = self._settings
        started = time.perf_counter()
        try:
            await aiosmtplib.send(
                message,
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username,
                password=(
                    settings.smtp_password.get_secret_value() if settings.smtp_password else None
                ),
                use_tls=settings.smtp_implicit_tls,
                start_tls=settings.smtp_starttls,
                tls_context=self._tls_context,
                timeout=settings.smtp_timeout_s,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            return failed_submission(error, latency_ms=elapsed_ms(started))
        return SendResult(succeeded=True, latency_ms=elapsed_ms(started), status_code=250)


def failed_submission(error: Exception, *, latency_ms: int) -> SendResult:
    """What a failed SMTP submission means: a refusal of the message is final, the rest retries."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        codes = [refused.code for refused in error.recipients]
        code = max(codes) if codes else None
        return SendResult(
            succeeded=False,
            latency_ms=latency_ms,
            status_code=code,
            error=f"recipient refused: {error}",
            # RFC 5321 section 4.2.1: 5yz is a permanent negative reply.
            permanent=code is not None and code >= 500,
        )
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return SendResult(
            succeeded=False,
            latency_ms=latency_ms,
            status_code=error.code,
            error=f"SMTP {error.code}: {error.message}",
            permanent=_refuses_the_message(error),
        )
    return SendResult(
        succeeded=False, latency_ms=latency_ms, error=f"{type(error).__name__}: {error}"
    )


def _refuses_the_message(error: aiosmtplib.SMTPResponseException) -> bool:
    """A 5yz reply (RFC 5321 section 4.2.1) to the message itself fails it for good.

    A refused login, a missing STARTTLS or a greeting that turns us away is a
    fault of the relay or of our configuration, the same for every message:
    once an operator fixes it the delivery must go through, so it is retried.
    """
    message_replies = (
        aiosmtplib.SMTPSenderRefused,
        aiosmtplib.SMTPRecipientRefused,
        aiosmtplib.SMTPDataError,
    )
    return (
        isinstance(error, message_replies)
        and 500 <= error.code < 600
        and error.code not in _SESSION_REPLIES
    )
