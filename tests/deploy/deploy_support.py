"""What the deployment checks share: paths, the settings classes, parsers of the files."""

from __future__ import annotations

import itertools
import os
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
from bali_activities.settings import ActivitiesSettings
from bali_common.settings import CommonSettings
from bali_consultation.settings import ConsultationSettings
from bali_notifications.settings import NotificationsSettings
from bali_reporting.settings import ReportingSettings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
POSTGRES_INIT = ROOT / "deploy" / "postgres" / "init-databases.sh"

SETTINGS: dict[str, type[CommonSettings]] = {
    cls.model_fields["service_name"].default: cls
    for cls in (ActivitiesSettings, ConsultationSettings, NotificationsSettings, ReportingSettings)
}

#: Notifications variables agreed with the engineer who writes NotificationsSettings.
AGREED_NOTIFICATIONS_VARIABLES = frozenset(
    {
        "BALI_SMTP_HOST",
        "BALI_SMTP_PORT",
        "BALI_SMTP_STARTTLS",
        "BALI_SMTP_USERNAME",
        "BALI_SMTP_PASSWORD",
        "BALI_SMTP_FROM",
        "BALI_CONSULTATION_PUBLIC_URL",
    }
)


def field_of(env_name: str) -> str:
    return env_name.removeprefix("BALI_").lower()


def parse_topic_creations(script: str) -> list[dict[str, Any]]:
    """Every `kafka-topics.sh ... --create` in a shell script, with its options."""
    creations = []
    for line in script.replace("\\\n", " ").splitlines():
        if "kafka-topics.sh" not in line or "--create" not in line:
            continue
        args = shlex.split(line)
        options: dict[str, Any] = {"config": {}}
        for flag, value in itertools.pairwise(args):
            if flag == "--config":
                key, _, setting = value.partition("=")
                options["config"][key] = setting
            elif flag in ("--topic", "--bootstrap-server"):
                options[flag.lstrip("-")] = value
            elif flag in ("--partitions", "--replication-factor"):
                options[flag.lstrip("-")] = int(value)
        options["if-not-exists"] = "--if-not-exists" in args
        creations.append(options)
    return creations


def image_tag(image: str) -> str | None:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def project_version() -> str:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert isinstance(version, str)
    return version


def postgres_init_databases() -> dict[str, str]:
    """Database (and role) name -> the environment variable holding the role's password."""
    pattern = r'^create_service_database\s+(\w+)\s+"\$\{(\w+):\?'
    return dict(re.findall(pattern, POSTGRES_INIT.read_text(), re.M))


def settings_from_env(
    monkeypatch: pytest.MonkeyPatch, cls: type[CommonSettings], env: dict[str, str]
) -> CommonSettings:
    """Build the settings exactly as the service would, from these environment variables only."""
    for name in list(os.environ):
        if name.upper().startswith("BALI_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return cls()
