"""What the deployment checks share: paths, the settings classes, parsers of the files."""

from __future__ import annotations

import ast
import copy
import functools
import itertools
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from bali_activities.settings import ActivitiesSettings
from bali_common.settings import CommonSettings
from bali_consultation.settings import ConsultationSettings
from bali_notifications.settings import NotificationsSettings
from bali_reporting.settings import ReportingSettings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
POSTGRES_INIT = ROOT / "deploy" / "postgres" / "init-databases.sh"
KUBERNETES = ROOT / "deploy" / "kubernetes"
K8S_BASE = KUBERNETES / "base"
OVERLAYS = KUBERNETES / "overlays"
COMPONENTS = KUBERNETES / "components"
RULES_FILE = ROOT / "deploy" / "prometheus" / "rules.yaml"
OPERATIONS_DOC = ROOT / "docs" / "operations.md"

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
        "BALI_WEBHOOK_SECRET_KEYS",
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


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


def kubectl_or_skip() -> str:
    """kubectl, which renders kustomizations offline; a newcomer's machine may lack it, CI not."""
    path = shutil.which("kubectl")
    if path is None:
        if in_ci():
            pytest.fail("kubectl is not installed: CI must render the kustomizations")
        pytest.skip("kubectl is not installed: the kustomizations are not rendered here (CI does)")
    return path


def rendered(directory: Path) -> list[dict[str, Any]]:
    """Every document `kubectl kustomize` renders from a kustomization directory."""
    return copy.deepcopy(list(_render(kubectl_or_skip(), directory)))


@functools.cache
def _render(kubectl: str, directory: Path) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"kubectl kustomize {directory}:\n{result.stderr}"
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d is not None)


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert all(isinstance(d, dict) for d in documents), path
    return documents


@functools.cache
def code_string_literals() -> frozenset[str]:
    """Every string constant in the services' and the shared library's code."""
    literals: set[str] = set()
    for path in [
        *(ROOT / "libs" / "common" / "src").rglob("*.py"),
        *(ROOT / "services").glob("*/src/**/*.py"),
    ]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                literals.add(node.value)
    return frozenset(literals)
