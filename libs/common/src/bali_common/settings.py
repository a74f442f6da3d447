"""Settings shared by every service; each service extends `CommonSettings` with its own."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal, Self

from limits import parse
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_LINK_SECRET = "dev-only-link-secret-change-me"  # noqa: S105  (refused in production)


class DatabaseSettings(BaseSettings):
    """Where a service's database is: all that its migrations read (`bali_common.migrations`)."""

    model_config = SettingsConfigDict(env_prefix="BALI_", env_file=None, extra="ignore")

    service_name: str = "bali"
    data_dir: Path = Field(default=Path(".bali"), description="Embedded default: SQLite, dev key")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL; default sqlite+aiosqlite in data_dir",
    )

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / (self.service_name + '.db')}"


class CommonSettings(DatabaseSettings):
    """Read from `BALI_*` environment variables; built in `create_app`, never at import time."""

    model_config = SettingsConfigDict(env_prefix="BALI_", env_file=None, extra="ignore")

    #: Services that mint or verify signed links set this, so production demands a real secret.
    signs_links: ClassVar[bool] = False

    environment: str = Field(default="development", description="development | production")
    host: str = "127.0.0.1"
    port: int = 8000
    max_request_bytes: int = Field(default=1_048_576, description="Larger bodies get 413")
    public_base_url: str | None = Field(
        default=None, description="URL at which users reach this service (links in emails)"
    )
    database_echo: bool = False

    # Kafka (any Kafka-protocol broker: the embedded tansu or Apache Kafka)
    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    kafka_topic_prefix: str = Field(
        default="", description="Prefix so environments share a cluster"
    )
    kafka_idempotent_producer: bool = Field(
        default=False, description="On for Apache Kafka; the embedded broker rejects InitProducerId"
    )
    kafka_replication_factor: int = Field(default=1, description="3 on a production cluster")
    kafka_create_topics: bool = Field(default=True, description="Create catalogue topics at start")
    kafka_fetch_max_wait_ms: int = Field(
        default=15, description="Low: the embedded broker waits the whole fetch wait"
    )
    kafka_session_timeout_ms: int = 10_000
    kafka_heartbeat_interval_ms: int = 1_000
    kafka_rebalance_timeout_ms: int = 10_000
    kafka_max_poll_interval_ms: int = 300_000
    kafka_request_timeout_ms: int = 30_000
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = Field(default=None, description="CA bundle for SSL")

    # Outbox relay and consumer runner
    outbox_poll_interval_s: float = Field(default=1.0, description="Safety-net poll of the outbox")
    outbox_batch_size: int = 200
    outbox_claim_seconds: float = Field(
        default=15.0, description="How long a relay owns claimed rows before another may take them"
    )
    consumer_max_attempts: int = Field(default=3, description="Tries before dead-lettering")
    consumer_retry_backoff_s: float = 0.2
    consumer_max_event_bytes: int = 1_048_576
    relay_id: str | None = Field(
        default=None, description="Stable identity of this relay; default host name + service"
    )
    outbox_retention_s: float = Field(
        default=7 * 86_400,
        gt=0,
        description="Sent outbox rows are kept this long, to publish again onto a new broker",
    )
    inbox_retention_s: float = Field(
        default=8 * 86_400,
        gt=0,
        description="Applied event ids are kept this long; at least the outbox retention",
    )
    retention_purge_interval_s: float = Field(default=300.0, gt=0)
    retention_purge_batch: int = Field(default=1_000, ge=1)
    broker_check_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="How often the relay asks which broker incarnation it talks to",
    )
    consumer_commit_timeout_s: float = Field(
        default=10.0, gt=0, description="An offset commit that takes longer counts as failed"
    )
    consumer_recreate_after_failures: int = Field(
        default=3, ge=1, description="Consecutive failed commits or fetches before a new consumer"
    )
    drain_timeout_s: float = Field(
        default=20.0, ge=0, description="A planned stop waits this long at most for the drain"
    )
    drain_quiet_s: float = Field(
        default=1.0, ge=0, description="Consumers caught up this long count as drained"
    )

    # Fault injection for the reliability suites (relay and consumer killed mid-way); 0 = off
    fault_relay_exit_after_publish_every: int = 0
    fault_consumer_exit_after_commit_every: int = 0

    # Auth (OpenID Connect in production, a generated dev key locally)
    jwt_issuer: str = "bali-dev"
    jwt_audience: str = "bali-platform"
    jwt_algorithms: list[str] = Field(default_factory=lambda: ["RS256"])
    jwt_leeway_s: int = 30
    jwks_url: str | None = Field(default=None, description="OIDC provider JWKS; unset = dev key")
    dev_signing_key_path: Path | None = Field(
        default=None, description="PEM private key; default data_dir/dev-signing-key.pem"
    )

    # Telemetry
    otlp_endpoint: str | None = Field(default=None, description="OTLP/HTTP traces endpoint")
    log_level: str = "INFO"

    # Secrets used by signed links and tokens issued by the services themselves
    link_signing_secret: SecretStr = SecretStr(DEV_LINK_SECRET)
    link_signing_previous_secrets: SecretStr | None = Field(
        default=None,
        description="Link-signing secrets being retired, comma-separated: links they signed "
        "still verify until they expire (rotation: docs/operations.md)",
    )

    @property
    def link_verifying_secrets(self) -> list[SecretStr]:
        """The current link-signing secret first, then those being retired."""
        retiring = self.link_signing_previous_secrets
        previous = retiring.get_secret_value().split(",") if retiring else []
        return [self.link_signing_secret, *(SecretStr(s.strip()) for s in previous if s.strip())]

    # Operational endpoints: open locally, closed or behind a token in production
    api_docs: bool = Field(
        default=True, description="Serve /docs, /redoc and /openapi.json; false closes them"
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="When set, /metrics answers only to `Authorization: Bearer <token>`",
    )

    # Rate limits (OWASP API4), each "<count>/<period>" or "<count> per <n> <unit>" (`limits`)
    rate_limit_enabled: bool = True
    rate_limit_storage_url: str = Field(
        default="async+memory://",
        description="Where the counters live: async+memory:// counts per process; "
        "async+redis://host:6379/0 is shared by every replica",
    )
    rate_limit_per_address: str = Field(
        default="1200/minute", description="Every request from one client address"
    )
    rate_limit_per_member: str = Field(
        default="600/minute",
        description="Requests of one member agency (one subject for callers without a member)",
    )
    rate_limit_failed_auth_per_address: str = Field(
        default="20/minute",
        description="Refused credentials from one address (401, refused signed links); past "
        "it, every request from that address is refused until the window moves on",
    )
    rate_limit_anonymous_per_address: str = Field(
        default="60/minute",
        description="Requests without a bearer token (acknowledge links, public feed) from one "
        "address",
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Proxies whose X-Forwarded-For names the client address (comma-separated, "
        "or *): set it to your ingress, or every client shares the proxy's rate limits",
    )

    @field_validator(
        "rate_limit_per_address",
        "rate_limit_per_member",
        "rate_limit_failed_auth_per_address",
        "rate_limit_anonymous_per_address",
    )
    @classmethod
    def _is_a_rate_limit(cls, value: str) -> str:
        parse(value)  # raises ValueError naming what it could not read
        return value

    @field_validator("rate_limit_storage_url")
    @classmethod
    def _is_async_storage(cls, value: str) -> str:
        if not value.startswith(("async+memory://", "async+redis://", "async+rediss://")):
            raise ValueError("rate_limit_storage_url must be async+memory:// or async+redis(s)://")
        return value

    @model_validator(mode="after")
    def _inbox_outlives_outbox(self) -> Self:
        """An event published again onto a new broker must still find its id in the inbox."""
        if self.inbox_retention_s < self.outbox_retention_s:
            raise ValueError("inbox_retention_s must be at least outbox_retention_s")
        return self

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> Self:
        """Refuse to start in production on the development fallbacks."""
        if self.environment == "production":
            if not self.jwks_url:
                raise ValueError("production needs BALI_JWKS_URL (the OIDC provider's JWKS)")
            dev_secret = self.link_signing_secret.get_secret_value() == DEV_LINK_SECRET
            if self.signs_links and dev_secret:
                raise ValueError("production needs BALI_LINK_SIGNING_SECRET")
            if self.rate_limit_enabled and self.rate_limit_storage_url.startswith("async+memory"):
                # Counted per process, each replica would grant the whole budget again.
                raise ValueError(
                    "production needs BALI_RATE_LIMIT_STORAGE_URL shared by the replicas "
                    "(async+redis://...)"
                )
        return self

    def resolved_dev_key_path(self) -> Path:
        return self.dev_signing_key_path or self.data_dir / "dev-signing-key.pem"
