"""Settings: production refuses development fallbacks; the README documents real settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bali_common.settings import CommonSettings
from pydantic import SecretStr, ValidationError

README = Path(__file__).parents[3] / "README.md"


class LinkSigningSettings(CommonSettings):
    signs_links = True


def test_production_requires_an_oidc_jwks_url() -> None:
    with pytest.raises(ValidationError, match="BALI_JWKS_URL"):
        CommonSettings(environment="production")
    CommonSettings(environment="production", jwks_url="https://idp.example/jwks")


def test_production_requires_a_real_link_secret_where_links_are_signed() -> None:
    with pytest.raises(ValidationError, match="BALI_LINK_SIGNING_SECRET"):
        LinkSigningSettings(environment="production", jwks_url="https://idp.example/jwks")
    LinkSigningSettings(
        environment="production",
        jwks_url="https://idp.example/jwks",
        link_signing_secret=SecretStr("a-real-secret"),
    )


def test_every_variable_in_the_readme_configuration_table_is_a_setting() -> None:
    text = README.read_text()
    table = text[text.index("## Configuration") : text.index("## Apache Kafka and PostgreSQL")]
    names = set(re.findall(r"`BALI_([A-Z0-9_]+)`", table))
    assert names
    unknown = {n for n in names if n.lower() not in CommonSettings.model_fields}
    assert unknown == set()
