"""Settings: production refuses development fallbacks; the README documents real settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from bali_common.settings import CommonSettings
from pydantic import SecretStr, ValidationError

README = Path(__file__).parents[3] / "README.md"


class LinkSigningSettings(CommonSettings):
    signs_links = True


#: What every production configuration sets besides the setting under test.
SHARED_COUNTERS: dict[str, Any] = {
    "rate_limit_enabled": True,
    "rate_limit_storage_url": "async+redis://redis:6379/0",
}


def test_production_requires_an_oidc_jwks_url() -> None:
    with pytest.raises(ValidationError, match="BALI_JWKS_URL"):
        CommonSettings(environment="production", **SHARED_COUNTERS)
    CommonSettings(environment="production", jwks_url="https://idp.example/jwks", **SHARED_COUNTERS)


def test_production_requires_a_real_link_secret_where_links_are_signed() -> None:
    with pytest.raises(ValidationError, match="BALI_LINK_SIGNING_SECRET"):
        LinkSigningSettings(
            environment="production", jwks_url="https://idp.example/jwks", **SHARED_COUNTERS
        )
    LinkSigningSettings(
        environment="production",
        jwks_url="https://idp.example/jwks",
        link_signing_secret=SecretStr("a-real-secret"),
        **SHARED_COUNTERS,
    )


def test_production_requires_rate_limit_counters_shared_by_the_replicas() -> None:
    with pytest.raises(ValidationError, match="BALI_RATE_LIMIT_STORAGE_URL"):
        CommonSettings(
            environment="production", jwks_url="https://idp.example/jwks", rate_limit_enabled=True
        )
    CommonSettings(
        environment="production", jwks_url="https://idp.example/jwks", rate_limit_enabled=False
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"rate_limit_per_member": "lots"},
        {"rate_limit_failed_auth_per_address": "10/fortnight"},
        {"rate_limit_storage_url": "redis://redis:6379"},
        {"rate_limit_storage_url": "memcached://cache:11211"},
    ],
)
def test_unreadable_rate_limit_settings_are_refused(overrides: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match=next(iter(overrides))):
        CommonSettings(**overrides)


def test_every_variable_in_the_readme_configuration_table_is_a_setting() -> None:
    text = README.read_text()
    table = text[text.index("## Configuration") : text.index("## Apache Kafka and PostgreSQL")]
    names = set(re.findall(r"`BALI_([A-Z0-9_]+)`", table))
    assert names
    unknown = {n for n in names if n.lower() not in CommonSettings.model_fields}
    assert unknown == set()


def test_retiring_link_secrets_verify_after_the_current_one() -> None:
    settings = CommonSettings(
        link_signing_secret=SecretStr("new"), link_signing_previous_secrets=SecretStr("old, older")
    )
    assert [s.get_secret_value() for s in settings.link_verifying_secrets] == [
        "new",
        "old",
        "older",
    ]
    assert [s.get_secret_value() for s in CommonSettings().link_verifying_secrets] == [
        CommonSettings().link_signing_secret.get_secret_value()
    ]
