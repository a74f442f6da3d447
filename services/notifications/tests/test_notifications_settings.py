"""Settings that would fail on every send, or leak the SMTP password, are refused at start-up."""

from __future__ import annotations

from typing import Any

import pytest
from bali_notifications.settings import NotificationsSettings
from pydantic import ValidationError

SMTP_USER = "bali-notifications"
SMTP_PASSWORD = "correct horse battery staple"


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"smtp_starttls": True, "smtp_implicit_tls": True}, "exclude each other"),
        ({"smtp_starttls": True, "smtp_username": SMTP_USER}, "set together"),
        ({"smtp_username": SMTP_USER, "smtp_password": SMTP_PASSWORD}, "never sent in clear"),
    ],
)
def test_incoherent_smtp_security_settings_are_refused_at_start_up(
    overrides: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(ValidationError, match=complaint):
        NotificationsSettings(**overrides)
