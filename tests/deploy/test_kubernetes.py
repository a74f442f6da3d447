"""deploy/kubernetes/base, cross-checked against the code: the topic catalogue, each service's
settings class (fields and port), the Dockerfile's user and the project version.

Plain YAML parsing; no cluster or kustomize binary is needed (but for the one rendering test).
The overlays and components: test_kubernetes_overlays.py; the API schemas:
test_kubernetes_schemas.py.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from bali_common.events.topics import STREAM_TOPICS, all_topics
from bali_common.migrations import database_settings
from bali_common.settings import CommonSettings, DatabaseSettings
from deploy_support import (
    AGREED_NOTIFICATIONS_VARIABLES,
    DOCKERFILE,
    POSTGRES_INIT,
    ROOT,
    SETTINGS,
    field_of,
    image_tag,
    parse_topic_creations,
    rendered,
    settings_from_env,
)
from sqlalchemy.engine import make_url

K8S = ROOT / "deploy" / "kubernetes" / "base"


# --- helpers ----------------------------------------------------------------------------------


@functools.cache
def kustomization() -> dict[str, Any]:
    document = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert isinstance(document, dict)
    return document


@functools.cache
def manifests() -> list[dict[str, Any]]:
    """Every document of every file the kustomization lists."""
    documents = []
    for resource in kustomization()["resources"]:
        for document in yaml.safe_load_all((K8S / resource).read_text()):
            if document is not None:
                documents.append({**document, "_file": resource})
    return documents


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    found = [m for m in manifests() if m["kind"] == kind]
    names = Counter(m["metadata"]["name"] for m in found)
    assert all(count == 1 for count in names.values()), f"duplicate {kind}: {names}"
    return {m["metadata"]["name"]: m for m in found}


def deployment_of(name: str) -> dict[str, Any]:
    """The Deployment that runs `python -m bali_<name>`."""
    for deployment in of_kind("Deployment").values():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            if container.get("command") == ["python", "-m", f"bali_{name}"]:
                return deployment
    raise AssertionError(f"no Deployment runs bali_{name}")


def main_container(name: str) -> dict[str, Any]:
    containers = deployment_of(name)["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c.get("command") == ["python", "-m", f"bali_{name}"])


def migration_job(name: str) -> dict[str, Any]:
    """The Job that runs `python -m bali_<name> migrate`."""
    found = [
        job
        for job in of_kind("Job").values()
        for container in job["spec"]["template"]["spec"]["containers"]
        if container.get("command") == ["python", "-m", f"bali_{name}", "migrate"]
    ]
    assert len(found) == 1, f"{len(found)} Jobs migrate the {name} database"
    return found[0]


def database_reference(container: dict[str, Any]) -> dict[str, Any]:
    (variable,) = [v for v in container.get("env", []) if v["name"] == "BALI_DATABASE_URL"]
    reference = variable["valueFrom"]["secretKeyRef"]
    assert isinstance(reference, dict)
    return reference


def secret_data(name: str) -> dict[str, str]:
    secret = of_kind("Secret")[name]
    assert "data" not in secret, "keep the template readable: stringData only"
    return {str(k): str(v) for k, v in secret["stringData"].items()}


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """Every variable the container sees, resolved from the ConfigMaps and Secret templates."""
    env: dict[str, str] = {}
    configmaps = of_kind("ConfigMap")
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            name = source["configMapRef"]["name"]
            assert name in configmaps, f"envFrom unknown ConfigMap {name}"
            env.update({str(k): str(v) for k, v in configmaps[name]["data"].items()})
        elif "secretRef" in source:
            env.update(secret_data(source["secretRef"]["name"]))
        else:
            raise AssertionError(f"unsupported envFrom {source}")
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = str(variable["value"])
            continue
        reference = variable["valueFrom"]
        if "secretKeyRef" in reference:
            ref = reference["secretKeyRef"]
            data = secret_data(ref["name"])
            assert ref["key"] in data, (
                f"{variable['name']}: Secret {ref['name']} lacks {ref['key']}"
            )
            env[variable["name"]] = data[ref["key"]]
        elif "configMapKeyRef" in reference:
            ref = reference["configMapKeyRef"]
            data = of_kind("ConfigMap")[ref["name"]]["data"]
            assert ref["key"] in data, f"{variable['name']}: ConfigMap {ref['name']} lacks key"
            env[variable["name"]] = str(data[ref["key"]])
        else:
            raise AssertionError(f"unsupported valueFrom {reference}")
    return env


def bali_env_names(name: str) -> set[str]:
    return {env for env in container_env(main_container(name)) if env.startswith("BALI_")}


def named_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    return next(int(p["containerPort"]) for p in container["ports"] if p.get("name") == port)


def pod_containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec["containers"], *spec.get("initContainers", [])]


def all_pod_specs() -> list[tuple[str, dict[str, Any]]]:
    specs = []
    for manifest in manifests():
        if manifest["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
            specs.append((manifest["metadata"]["name"], manifest["spec"]["template"]["spec"]))
    return specs


def cpu_millicores(quantity: str | int) -> float:
    text = str(quantity)
    return float(text[:-1]) if text.endswith("m") else float(text) * 1000


def memory_bytes(quantity: str | int) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    text = str(quantity)
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text.removesuffix(suffix)) * factor
    return float(text)


# --- the kustomization ------------------------------------------------------------------------


def test_kustomization_lists_every_manifest_in_the_folder() -> None:
    on_disk = {
        path.name
        for path in K8S.iterdir()
        if path.suffix in (".yaml", ".yml") and path.name != "kustomization.yaml"
    }
    listed = kustomization()["resources"]
    assert len(listed) == len(set(listed)), "a resource is listed twice"
    assert set(listed) == on_disk


def test_every_manifest_is_well_formed() -> None:
    for manifest in manifests():
        assert manifest.get("apiVersion"), manifest["_file"]
        assert manifest.get("kind"), manifest["_file"]
        assert manifest["metadata"].get("name"), manifest["_file"]
        assert "namespace" not in manifest["metadata"], "the kustomization sets the namespace"


def test_namespace_is_the_one_the_kustomization_uses() -> None:
    namespaces = of_kind("Namespace")
    assert set(namespaces) == {kustomization()["namespace"]}
    labels = next(iter(namespaces.values()))["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_kustomize_builds_the_namespaced_platform() -> None:
    documents = rendered(K8S)
    assert len(documents) == len(manifests())
    namespace = kustomization()["namespace"]
    for document in documents:
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == namespace, document["metadata"]["name"]
    override = next(i for i in kustomization()["images"] if i["name"] == "bali-platform")
    images = {
        container["image"]
        for document in documents
        if document["kind"] == "Deployment"
        for container in document["spec"]["template"]["spec"]["containers"]
    }
    assert images == {f"{override['newName']}:{override['newTag']}"}


# --- the Deployments --------------------------------------------------------------------------


def test_one_deployment_per_service() -> None:
    deployments = of_kind("Deployment")
    assert set(deployments) == set(SETTINGS)
    for name in SETTINGS:
        assert deployment_of(name)["metadata"]["name"] == name


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_deployment_and_service_use_the_port_the_settings_define(name: str) -> None:
    port = SETTINGS[name].model_fields["port"].default
    container = main_container(name)
    assert [p["containerPort"] for p in container["ports"]] == [port]
    assert container_env(container)["BALI_PORT"] == str(port)
    annotations = deployment_of(name)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"
    service = of_kind("Service")[name]
    assert [p["port"] for p in service["spec"]["ports"]] == [port]
    for service_port in service["spec"]["ports"]:
        assert named_port(container, service_port["targetPort"]) == port


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_service_selects_the_deployment_pods(name: str) -> None:
    deployment = deployment_of(name)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    service_selector = of_kind("Service")[name]["spec"]["selector"]
    assert service_selector.items() <= pod_labels.items()


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_probes_hit_healthz_and_readyz(name: str) -> None:
    container = main_container(name)
    port = SETTINGS[name].model_fields["port"].default
    expected = {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    if "startupProbe" in container:
        expected["startupProbe"] = "/healthz"
    for probe, path in expected.items():
        http = container[probe]["httpGet"]
        assert http["path"] == path, f"{name} {probe}"
        assert named_port(container, http["port"]) == port, f"{name} {probe}"


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_resources_have_requests_and_limits(name: str) -> None:
    resources = main_container(name)["resources"]
    for kind in ("cpu", "memory"):
        assert kind in resources["requests"], f"{name} requests no {kind}"
        assert kind in resources["limits"], f"{name} has no {kind} limit"
    assert cpu_millicores(resources["requests"]["cpu"]) <= cpu_millicores(
        resources["limits"]["cpu"]
    )
    assert memory_bytes(resources["requests"]["memory"]) <= memory_bytes(
        resources["limits"]["memory"]
    )


def test_pods_run_as_the_dockerfile_user_and_meet_restricted_pod_security() -> None:
    users = re.findall(r"^USER\s+(\d+)", DOCKERFILE.read_text(), re.M)
    for owner, spec in all_pod_specs():
        context = spec["securityContext"]
        assert context["runAsNonRoot"] is True, owner
        assert context["seccompProfile"]["type"] == "RuntimeDefault", owner
        assert spec.get("automountServiceAccountToken") is False, owner
        for container in pod_containers(spec):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, owner
            assert security["capabilities"]["drop"] == ["ALL"], owner
            assert security.get("readOnlyRootFilesystem") is True, owner
    for name in SETTINGS:
        context = deployment_of(name)["spec"]["template"]["spec"]["securityContext"]
        assert str(context["runAsUser"]) == users[-1], "runAsUser must be the image's USER"


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_bali_env_vars_are_fields_of_the_service_settings(name: str) -> None:
    fields = SETTINGS[name].model_fields
    unknown = sorted(env for env in bali_env_names(name) if field_of(env) not in fields)
    assert not unknown, (
        f"deploy/kubernetes/base gives {name} {unknown}, but {SETTINGS[name].__name__} has no such "
        "field (pydantic-settings ignores unknown BALI_* variables silently: a typo?)"
    )


def test_shared_configmap_holds_common_settings_only() -> None:
    """bali-config goes to every service, so each key must be a CommonSettings field."""
    data = of_kind("ConfigMap")["bali-config"]["data"]
    unknown = sorted(key for key in data if field_of(key) not in CommonSettings.model_fields)
    assert not unknown, f"bali-config sets {unknown}, which are not CommonSettings fields"
    assert all(key.startswith("BALI_") for key in data)


def test_notifications_gets_the_agreed_smtp_and_link_variables() -> None:
    expected = set(AGREED_NOTIFICATIONS_VARIABLES)
    missing = sorted(expected - bali_env_names("notifications"))
    assert not missing, f"the notifications Deployment lacks {missing}"
    container = main_container("notifications")
    from_secret = {v["name"] for v in container["env"] if "secretKeyRef" in v.get("valueFrom", {})}
    assert {"BALI_SMTP_USERNAME", "BALI_SMTP_PASSWORD"} <= from_secret


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_service_settings_load_from_the_manifests(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_from_env(monkeypatch, SETTINGS[name], container_env(main_container(name)))
    assert settings.service_name == name
    assert settings.environment == "production"
    assert settings.host == "0.0.0.0"
    assert settings.kafka_idempotent_producer is True
    assert settings.kafka_create_topics is False
    assert settings.kafka_replication_factor == 3
    assert settings.kafka_topic_prefix == "", "the topics Job creates unprefixed names"
    assert settings.jwks_url, "production verifies tokens against the OIDC provider's JWKS"
    assert settings.rate_limit_enabled is True
    assert settings.rate_limit_storage_url.startswith("async+redis"), "counters shared"
    assert settings.api_docs is False, "the API documents are closed in production"
    assert settings.metrics_token is not None, "scrapes present a bearer token"
    assert settings.jwks_url.startswith("https://")
    assert settings.otlp_endpoint
    assert urlsplit(settings.otlp_endpoint).path == "/v1/traces"
    url = make_url(settings.resolved_database_url())
    assert url.drivername == "postgresql+asyncpg"
    assert url.database == name, "database per service"
    assert url.username == name, "one role per service"
    init_databases = re.findall(
        r"^create_service_database\s+(\w+)", POSTGRES_INIT.read_text(), re.M
    )
    assert url.database in init_databases


def test_link_signing_secret_is_shared_by_issuer_and_verifier() -> None:
    references = {}
    for name in ("consultation", "notifications"):
        variable = next(
            v for v in main_container(name)["env"] if v["name"] == "BALI_LINK_SIGNING_SECRET"
        )
        references[name] = variable["valueFrom"]["secretKeyRef"]
    assert references["consultation"] == references["notifications"]


def test_webhook_secret_keys_come_from_the_secret_to_notifications_only() -> None:
    """The keys that encrypt the webhook signing secrets decrypt them: no other service has
    any use for them."""
    readers = {
        name: variable["valueFrom"]["secretKeyRef"]
        for name in SETTINGS
        for variable in main_container(name).get("env", [])
        if variable["name"] == "BALI_WEBHOOK_SECRET_KEYS"
    }
    assert readers == {"notifications": {"name": "bali-secrets", "key": "webhook-secret-keys"}}


def test_secret_template_holds_placeholders_only() -> None:
    for name in of_kind("Secret"):
        for key, value in secret_data(name).items():
            assert "CHANGE-ME" in value, f"Secret {name}/{key} must stay a placeholder"
    referenced = {
        variable["valueFrom"]["secretKeyRef"]["key"]
        for _, spec in all_pod_specs()
        for container in pod_containers(spec)
        for variable in container.get("env", [])
        if "secretKeyRef" in variable.get("valueFrom", {})
    }
    assert referenced == set(secret_data("bali-secrets")), "unused or missing Secret keys"


# --- schema migrations ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_a_job_migrates_each_database_with_the_service_image_and_credentials(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = migration_job(name)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    service = main_container(name)
    assert container["image"] == service["image"]
    assert database_reference(container) == database_reference(service)
    env = container_env(container)
    unknown = sorted(v for v in env if field_of(v) not in DatabaseSettings.model_fields)
    assert not unknown, f"the migration reads only where its database is, not {unknown}"
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("OnFailure", "Never")
    # Jobs are immutable: one still there would make the next release's apply fail.
    assert job["spec"]["ttlSecondsAfterFinished"] <= 3600
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    url = make_url(database_settings(name).resolved_database_url())
    assert (url.database, url.username) == (name, name)
    assert job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == (
        "migration"
    )


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_service_pods_wait_until_their_database_is_at_the_image_schema(name: str) -> None:
    spec = deployment_of(name)["spec"]["template"]["spec"]
    (wait,) = spec["initContainers"]
    command = wait["command"]
    assert command[:5] == ["python", "-m", f"bali_{name}", "migrate", "--check"]
    assert float(command[command.index("--wait") + 1]) > 0
    assert wait["image"] == main_container(name)["image"]
    assert database_reference(wait) == database_reference(main_container(name))


# --- autoscaling and disruption ---------------------------------------------------------------


def test_every_deployment_has_an_hpa_on_cpu() -> None:
    hpas = of_kind("HorizontalPodAutoscaler")
    deployments = of_kind("Deployment")
    targets = set()
    largest_partition_count = max(spec.partitions for spec in STREAM_TOPICS.values())
    for name, hpa in hpas.items():
        assert hpa["apiVersion"] == "autoscaling/v2"
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment"
        assert target["apiVersion"] == "apps/v1"
        assert target["name"] in deployments, f"HPA {name} targets a missing Deployment"
        targets.add(target["name"])
        spec = hpa["spec"]
        assert 2 <= spec["minReplicas"] <= spec["maxReplicas"]
        # Consumers beyond the partition count sit idle: see the comment on each HPA.
        assert spec["maxReplicas"] <= largest_partition_count
        metrics = [m for m in spec["metrics"] if m["type"] == "Resource"]
        assert any(
            m["resource"]["name"] == "cpu" and m["resource"]["target"]["type"] == "Utilization"
            for m in metrics
        )
        deployment = deployments[target["name"]]
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert "cpu" in container["resources"]["requests"], "CPU utilisation needs requests"
        assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    assert targets == set(deployments)


def test_every_deployment_has_a_disruption_budget() -> None:
    budgets = of_kind("PodDisruptionBudget")
    covered = set()
    for name, budget in budgets.items():
        assert budget["apiVersion"] == "policy/v1"
        selector = budget["spec"]["selector"]["matchLabels"]
        matches = [
            deployment_name
            for deployment_name, deployment in of_kind("Deployment").items()
            if selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matches) == 1, f"PDB {name} must select exactly one Deployment"
        covered.update(matches)
        assert "maxUnavailable" in budget["spec"] or "minAvailable" in budget["spec"]
    assert covered == set(of_kind("Deployment"))


# --- topics -----------------------------------------------------------------------------------


def test_topics_job_creates_every_catalogue_topic_with_its_partitions() -> None:
    jobs = [
        job
        for job in of_kind("Job").values()
        for container in job["spec"]["template"]["spec"]["containers"]
        if "kafka-topics.sh" in " ".join(container.get("command", []) + container.get("args", []))
    ]
    assert len(jobs) == 1
    container = jobs[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].startswith("apache/kafka:")
    script = "\n".join(container.get("command", []) + container.get("args", []))
    creations = parse_topic_creations(script)
    created = Counter(creation["topic"] for creation in creations)
    assert all(count == 1 for count in created.values()), f"topics created twice: {created}"
    assert {c["topic"]: c["partitions"] for c in creations} == {
        spec.name: spec.partitions for spec in all_topics()
    }
    replication = int(of_kind("ConfigMap")["bali-config"]["data"]["BALI_KAFKA_REPLICATION_FACTOR"])
    assert replication == 3
    env = container_env(container)
    for creation in creations:
        assert creation["if-not-exists"], "the Job must be safe to run again"
        assert creation["replication-factor"] == replication
        min_isr = int(creation["config"].get("min.insync.replicas", 1))
        assert 1 < min_isr < replication, "acks=all must survive one broker down"
        bootstrap = creation["bootstrap-server"]
        assert bootstrap.startswith("$"), "bootstrap servers come from the ConfigMap"
        assert (
            env[bootstrap.strip("${}")]
            == (of_kind("ConfigMap")["bali-config"]["data"]["BALI_KAFKA_BOOTSTRAP_SERVERS"])
        )


# --- images -----------------------------------------------------------------------------------


def test_images_are_pinned() -> None:
    for owner, spec in all_pod_specs():
        for container in spec["containers"] + spec.get("initContainers", []):
            tag = image_tag(container["image"])
            assert tag, f"{owner}: {container['image']} has no tag"
            assert "latest" not in tag, f"{owner}: pin {container['image']}"
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    images = {main_container(name)["image"] for name in SETTINGS}
    assert images == {f"bali-platform:{version}"}
    overrides = {image["name"]: image for image in kustomization()["images"]}
    assert overrides["bali-platform"]["newTag"] == version
    for image in kustomization()["images"]:
        assert "latest" not in str(image.get("newTag", "")), image
