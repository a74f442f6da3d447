"""The `bali` command's token and asyncapi subcommands, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
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


def test_the_supervisor_does_not_load_what_only_other_commands_need() -> None:
    """`bali up` runs as long as the platform: what its module imports stays in memory."""
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, bali_devkit.cli; print(' '.join(sorted(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    packages = {name.split(".")[0] for name in loaded}
    assert not {"sqlalchemy", "alembic", "sqlmodel", "bali_reporting"} & packages
    assert not {"bali_devkit.demo", "bali_devkit.migrations"} & set(loaded)
