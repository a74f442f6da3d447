"""The `bali` command's token and asyncapi subcommands, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from bali_common.auth import Role, TokenVerifier
from bali_common.settings import CommonSettings
from bali_devkit.cli import app
from typer.testing import CliRunner

runner = CliRunner()


def test_token_prints_a_dev_token_the_services_accept(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        ["token", "--member", "AU", "--role", "co_chair", "--role", "member"],
        env={"BALI_DATA_DIR": str(tmp_path)},
    )
    assert result.exit_code == 0, result.output
    principal = TokenVerifier(CommonSettings(data_dir=tmp_path)).verify(result.output.strip())
    assert principal.member_id == "AU"
    assert principal.roles == {Role.co_chair, Role.member}


def test_token_refuses_an_unknown_role(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["token", "--role", "superuser"], env={"BALI_DATA_DIR": str(tmp_path)}
    )
    assert result.exit_code != 0


def test_asyncapi_prints_the_document_with_the_topic_prefix() -> None:
    result = runner.invoke(app, ["asyncapi", "--topic-prefix", "staging."])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["channels"]["alerts"]["address"] == "staging.bali.alerts"
