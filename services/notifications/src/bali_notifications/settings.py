"""Settings of the notifications service."""

from __future__ import annotations

from email.utils import parseaddr
from pathlib import Path
from typing import Self

from bali_common.settings import CommonSettings
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from bali_notifications import mailheaders


class NotificationsSettings(CommonSettings):
    # Errors name the setting, never repeat its value: some values are keys and passwords.
    model_config = SettingsConfigDict(hide_input_in_errors=True)

    service_name: str = "notifications"
    port: int = 8003
    signs_links = True

    # Links in emails
    consultation_public_url: str = Field(
        default="http://127.0.0.1:8002",
        description="Where users reach the consultation service (one-click acknowledge links)",
    )
    acknowledge_link_ttl_s: int = Field(default=86_400, ge=60)

    # Email over SMTP
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_starttls: bool = Field(
        default=False, description="Require STARTTLS after connecting (submission, 587)"
    )
    smtp_implicit_tls: bool = Field(default=False, description="TLS from the first byte (465)")
    smtp_username: str | None = Field(
        default=None, description="Login at the relay; needs STARTTLS or implicit TLS"
    )
    smtp_password: SecretStr | None = None
    smtp_ca_file: Path | None = Field(
        default=None,
        description=(
            "PEM bundle trusted for the SMTP server's certificate instead of the default CAs; "
            "the certificate and the host name are always verified"
        ),
    )
    smtp_timeout_s: float = 15.0
    smtp_from: str = Field(
        default="Bali Process Notifications <notifications@bali-process.example>",
        description="From of every email: an ASCII address, and a display name that, if not "
        "ASCII, fits one encoded-word (45 bytes of UTF-8)",
    )

    # Webhooks (Standard Webhooks)
    webhook_timeout_s: float = Field(
        default=15.0, description="Whole request, connect to last byte (Standard Webhooks: 15 s)"
    )
    webhook_allow_list: list[str] = Field(
        default_factory=list,
        description=(
            "Destinations exempt from the https-only and public-address rules: 'host:port' "
            "entries or CIDR blocks. Empty in production unless receivers are internal."
        ),
    )
    webhook_secret_rotation_overlap_s: int = Field(
        default=86_400, description="How long a rotated-out secret still signs, beside the new one"
    )
    webhook_max_response_bytes: int = 65_536
    webhook_ca_file: str | None = Field(
        default=None,
        description="PEM bundle trusted for receivers' certificates instead of the default CAs",
    )
    webhook_secret_keys: SecretStr | None = Field(
        default=None,
        description=(
            "Fernet keys that encrypt the webhook signing secrets at rest, comma-separated, "
            "newest first: the first encrypts, every one decrypts (rotation: "
            "docs/operations.md). Required in production; in development a key is generated "
            "in the data directory"
        ),
    )
    dev_webhook_secret_key_path: Path | None = Field(
        default=None, description="Development key file; default data_dir/dev-webhook-secret.key"
    )

    # Retries of email and webhook deliveries
    delivery_retry_schedule_s: list[float] = Field(
        default_factory=lambda: [5.0, 300.0, 1_800.0, 7_200.0, 18_000.0, 36_000.0, 36_000.0],
        description=(
            "Delay before each retry after a failed attempt (8 attempts over about 27 h); "
            "after the last the delivery is dead-lettered"
        ),
    )
    delivery_retry_jitter: float = Field(default=0.2, ge=0, lt=1, description="+/- fraction")
    retry_after_max_s: int = Field(default=86_400, description="Cap on a receiver's Retry-After")
    operator_warning_after_failures: int = Field(
        default=3, ge=1, description="Failed attempts of an Extreme-alert delivery that warn ops"
    )

    # Alerts that arrived before their recipients were in the member directory
    alert_catch_up_window_s: float = Field(
        default=86_400.0,
        gt=0,
        description=(
            "Open alerts raised within this window are planned for co-chairs, affected members "
            "and focal points that join the directory (or are added to it) after the alert"
        ),
    )

    # Dispatcher and digests
    dispatch_in_background: bool = Field(
        default=True,
        description="Run the delivery loop; tests that drive the clock turn it off",
    )
    dispatch_poll_interval_s: float = 1.0
    dispatch_batch_size: int = 50
    dispatch_concurrency: int = Field(
        default=20, ge=1, description="Webhook and inbox sends in flight at once"
    )
    dispatch_email_concurrency: int = Field(
        default=4,
        ge=1,
        description="Email sends in flight at once, apart: a slow SMTP server never holds "
        "up a webhook",
    )
    dispatch_claim_seconds: float = Field(
        default=60.0, description="Lease on claimed deliveries; longer than any one send"
    )
    digest_check_interval_s: float = 300.0
    routing_cache_ttl_s: float = Field(
        default=10.0,
        gt=0,
        description="Longest the directory and subscriptions are planned from memory, even "
        "when nothing says they changed",
    )

    # Inbox live stream
    inbox_stream_heartbeat_s: float = Field(
        default=15.0, description="Keep-alive comment interval; also the cross-replica poll"
    )

    @field_validator("smtp_from")
    @classmethod
    def _from_is_sendable_exactly(cls, value: str) -> str:
        """Refused at start-up rather than garbled in every reader's mailbox."""
        display_name, address = parseaddr(value)
        mailheaders.mailbox("From", display_name, address)
        return value

    @field_validator("delivery_retry_schedule_s")
    @classmethod
    def _schedule_is_positive(cls, value: list[float]) -> list[float]:
        if any(delay <= 0 for delay in value):
            raise ValueError("retry delays must be positive")
        return value

    @model_validator(mode="after")
    def _production_seals_webhook_secrets_with_real_keys(self) -> Self:
        """The development key sits beside the data; production brings its own keys."""
        if self.environment == "production" and self.webhook_secret_keys is None:
            raise ValueError(
                "production needs BALI_WEBHOOK_SECRET_KEYS (Fernet keys for the webhook "
                "signing secrets at rest)"
            )
        return self

    def resolved_webhook_key_path(self) -> Path:
        return self.dev_webhook_secret_key_path or self.data_dir / "dev-webhook-secret.key"

    @model_validator(mode="after")
    def _smtp_security_is_coherent(self) -> Self:
        """Refuse at start-up what would otherwise fail, or leak the password, on every send."""
        if self.smtp_starttls and self.smtp_implicit_tls:
            raise ValueError(
                "smtp_starttls (upgrade a plain connection, 587) and smtp_implicit_tls "
                "(TLS from the first byte, 465) exclude each other"
            )
        if (self.smtp_username is None) != (self.smtp_password is None):
            raise ValueError("smtp_username and smtp_password are set together")
        if self.smtp_username is not None and not (self.smtp_starttls or self.smtp_implicit_tls):
            raise ValueError(
                "an SMTP login needs smtp_starttls or smtp_implicit_tls: the password is never "
                "sent in clear text"
            )
        return self
