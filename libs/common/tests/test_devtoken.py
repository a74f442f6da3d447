"""`python -m bali_common.devtoken`: dev tokens inside an image, refused where OIDC is set."""

from __future__ import annotations

from pathlib import Path

import pytest
from bali_common.auth import Role, TokenVerifier
from bali_common.devtoken import main
from bali_common.settings import CommonSettings


def test_a_dev_token_is_signed_with_the_shared_dev_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BALI_DATA_DIR", str(tmp_path))
    assert main(["--member", "AU", "--role", "co_chair", "--role", "member"]) == 0
    token = capsys.readouterr().out.strip()
    principal = TokenVerifier(CommonSettings(data_dir=tmp_path)).verify(token)
    assert principal.member_id == "AU"
    assert set(principal.roles) == {Role.co_chair, Role.member}


def test_no_dev_token_where_an_identity_provider_is_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BALI_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BALI_JWKS_URL", "https://login.example.org/jwks")
    assert main(["--role", "admin"]) == 2
    assert capsys.readouterr().out == ""
    assert not (tmp_path / "dev-signing-key.pem").exists()
