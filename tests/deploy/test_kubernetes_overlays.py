"""deploy/kubernetes overlays and components, cross-checked against the base and the code.

The first half reads the overlay files as plain YAML (no binary needed): every patch targets
something the base has, the Strimzi topics match the catalogue and the topics Job, the
PodMonitor selects the services' pods. The second half renders the overlays with
`kubectl kustomize` (skipped where kubectl is missing, required in CI) and checks the result:
what the patches did, and that the services' settings load from it.
"""

from __future__ import annotations

import functools
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from bali_common.events.topics import STREAM_TOPICS, all_topics
from deploy_support import (
    COMPONENTS,
    K8S_BASE,
    OVERLAYS,
    SETTINGS,
    parse_topic_creations,
    project_version,
    rendered,
    settings_from_env,
    yaml_documents,
)

PRODUCTION = OVERLAYS / "production"
PRODUCTION_STRIMZI = OVERLAYS / "production-strimzi"
STRIMZI_TOPICS = COMPONENTS / "strimzi-topics"
MONITORING = COMPONENTS / "monitoring"
LARGEST_PARTITION_COUNT = max(spec.partitions for spec in STREAM_TOPICS.values())


# --- helpers ----------------------------------------------------------------------------------


@functools.cache
def kustomization(directory: Path) -> dict[str, Any]:
    document = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert isinstance(document, dict)
    return document


@functools.cache
def base_documents() -> tuple[dict[str, Any], ...]:
    return tuple(
        document
        for resource in kustomization(K8S_BASE)["resources"]
        for document in yaml_documents(K8S_BASE / resource)
    )


def base_object(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in base_documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"the base has {len(found)} {kind} named {name}"
    return found[0]


def base_objects(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in base_documents() if d["kind"] == kind}


def patches(directory: Path) -> list[dict[str, Any]]:
    """Every document of the kustomization's patches, from files or inline."""
    documents = []
    for entry in kustomization(directory).get("patches", []):
        if "path" in entry:
            documents.extend(yaml_documents(directory / entry["path"]))
        else:
            documents.extend(d for d in yaml.safe_load_all(entry["patch"]) if d is not None)
    return documents


def patches_of(directory: Path, kind: str) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for patch in patches(directory):
        if patch["kind"] == kind and "$patch" not in patch:
            found.setdefault(patch["metadata"]["name"], []).append(patch)
    return found


def patched_container(directory: Path, name: str) -> dict[str, Any]:
    """What the patches of `directory` set on the container `name` of the Deployment `name`,
    merged: its variables (each set by one patch only) and its other fields."""
    merged: dict[str, Any] = {"env": []}
    for patch in patches_of(directory, "Deployment").get(name, []):
        container = containers(patch)[name]
        for field, value in container.items():
            if field == "env":
                merged["env"].extend(value)
            elif field != "name":
                assert field not in merged, f"{name}: two patches set {field}"
                merged[field] = value
    variables = Counter(v["name"] for v in merged["env"])
    assert all(count == 1 for count in variables.values()), f"{name}: {variables}"
    return merged


def hpa_patches(directory: Path) -> dict[str, dict[str, Any]]:
    found = patches_of(directory, "HorizontalPodAutoscaler")
    assert all(len(p) == 1 for p in found.values()), "an autoscaler is patched twice"
    return {name: p[0] for name, p in found.items()}


def deletions(directory: Path) -> set[tuple[str, str]]:
    return {
        (p["kind"], p["metadata"]["name"])
        for p in patches(directory)
        if p.get("$patch") == "delete"
    }


def containers(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}


def secret_refs(container: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Variable -> (Secret, key) for every variable read from a Secret."""
    return {
        variable["name"]: (
            variable["valueFrom"]["secretKeyRef"]["name"],
            variable["valueFrom"]["secretKeyRef"]["key"],
        )
        for variable in container.get("env", [])
        if "secretKeyRef" in variable.get("valueFrom", {})
    }


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


def base_kafka_settings() -> tuple[int, str]:
    """Replication factor and bootstrap servers of the base's shared ConfigMap."""
    data = base_object("ConfigMap", "bali-config")["data"]
    return int(data["BALI_KAFKA_REPLICATION_FACTOR"]), data["BALI_KAFKA_BOOTSTRAP_SERVERS"]


def topics_job() -> dict[str, Any]:
    jobs = [
        job
        for job in base_objects("Job").values()
        for container in job["spec"]["template"]["spec"]["containers"]
        if "kafka-topics.sh" in " ".join(container.get("command", []) + container.get("args", []))
    ]
    assert len(jobs) == 1
    return jobs[0]


def job_topic_creations() -> dict[str, dict[str, Any]]:
    container = topics_job()["spec"]["template"]["spec"]["containers"][0]
    script = "\n".join(container.get("command", []) + container.get("args", []))
    return {creation["topic"]: creation for creation in parse_topic_creations(script)}


def of_kind(documents: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    found = [d for d in documents if d["kind"] == kind]
    names = Counter(d["metadata"]["name"] for d in found)
    assert all(count == 1 for count in names.values()), f"duplicate {kind}: {names}"
    return {d["metadata"]["name"]: d for d in found}


# --- the overlay files, plain YAML ------------------------------------------------------------


@pytest.mark.parametrize(
    "directory",
    sorted([*OVERLAYS.iterdir(), *COMPONENTS.iterdir()]),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_kustomization_references_existing_files(directory: Path) -> None:
    document = kustomization(directory)
    expected_kind = "Component" if directory.parent == COMPONENTS else "Kustomization"
    assert document["kind"] == expected_kind
    referenced = [
        *document.get("resources", []),
        *document.get("components", []),
        *(entry["path"] for entry in document.get("patches", []) if "path" in entry),
    ]
    assert referenced
    for reference in referenced:
        assert (directory / reference).exists(), f"{directory.name}: {reference} does not exist"
    on_disk = {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"}
    used = {Path(r).name for r in referenced if (directory / r).is_file()}
    assert on_disk <= used, f"{directory.name}: {sorted(on_disk - used)} are not used"


def test_every_production_patch_targets_something_the_base_has() -> None:
    for patch in patches(PRODUCTION):
        target = base_object(patch["kind"], patch["metadata"]["name"])
        if patch["kind"] != "Deployment":
            continue
        base_containers = containers(target)
        for name, container in containers(patch).items():
            assert name in base_containers, f"{target['metadata']['name']} has no container {name}"
            base_env = {v["name"] for v in base_containers[name].get("env", [])}
            added = sorted({v["name"] for v in container.get("env", [])} - base_env)
            # The patches re-point variables the base sets; a new variable belongs in the base.
            assert not added, f"{name}: the production patch adds {added}"


def test_production_drops_the_placeholder_secret() -> None:
    assert deletions(PRODUCTION) == {("Secret", name) for name in base_objects("Secret")}


def test_production_reads_every_credential_from_out_of_band_secrets() -> None:
    template_secrets = set(base_objects("Secret"))
    for name in SETTINGS:
        base_container = containers(base_object("Deployment", name))[name]
        patched = secret_refs(patched_container(PRODUCTION, name))
        assert set(patched) == set(secret_refs(base_container)), (
            f"{name}: production must re-point exactly the variables the base reads from Secrets"
        )
        for variable, (secret, key) in patched.items():
            assert secret not in template_secrets, f"{name} {variable} still uses the template"
            assert "CHANGE-ME" not in f"{secret}{key}"


def test_production_secrets_are_scoped_to_the_services_that_need_them() -> None:
    users: dict[str, set[str]] = {}
    refs: dict[tuple[str, str], tuple[str, str]] = {}
    for name in SETTINGS:
        for variable, (secret, key) in secret_refs(patched_container(PRODUCTION, name)).items():
            users.setdefault(secret, set()).add(name)
            refs[(name, variable)] = (secret, key)
    for name in SETTINGS:
        secret, _ = refs[(name, "BALI_DATABASE_URL")]
        assert users[secret] == {name}, f"{secret} holds {name}'s database credentials only"
    # One signs the acknowledge links, the other verifies them: one Secret, one key.
    assert (
        refs[("consultation", "BALI_LINK_SIGNING_SECRET")]
        == refs[("notifications", "BALI_LINK_SIGNING_SECRET")]
    )
    smtp = {refs[("notifications", v)][0] for v in ("BALI_SMTP_USERNAME", "BALI_SMTP_PASSWORD")}
    assert all(users[secret] == {"notifications"} for secret in smtp)
    keys, _ = refs[("notifications", "BALI_WEBHOOK_SECRET_KEYS")]
    assert users[keys] == {"notifications"}, "the webhook secret keys are notifications' own"


def test_production_replica_bounds_stay_within_the_partitions() -> None:
    bounds = hpa_patches(PRODUCTION)
    assert set(bounds) == set(base_objects("HorizontalPodAutoscaler"))
    for name, patch in bounds.items():
        spec = patch["spec"]
        base_spec = base_object("HorizontalPodAutoscaler", name)["spec"]
        assert spec["minReplicas"] >= base_spec["minReplicas"], f"{name}: fewer than the base"
        assert spec["minReplicas"] <= spec["maxReplicas"] <= LARGEST_PARTITION_COUNT, name
    for name in ("consultation", "notifications"):
        # The alert path keeps two replicas serving while the budget lets one go.
        assert bounds[name]["spec"]["minReplicas"] >= 3, name
    for deployment_patches in patches_of(PRODUCTION, "Deployment").values():
        for patch in deployment_patches:
            assert "replicas" not in patch["spec"], "the autoscalers own the replica count"


def test_production_resources_cover_every_service_and_never_shrink_the_base() -> None:
    for name in SETTINGS:
        resources = patched_container(PRODUCTION, name)["resources"]
        base = containers(base_object("Deployment", name))[name]["resources"]
        for bound in ("requests", "limits"):
            assert cpu_millicores(resources[bound]["cpu"]) >= cpu_millicores(base[bound]["cpu"])
            assert memory_bytes(resources[bound]["memory"]) >= memory_bytes(base[bound]["memory"])
        assert cpu_millicores(resources["requests"]["cpu"]) <= cpu_millicores(
            resources["limits"]["cpu"]
        )
        assert memory_bytes(resources["requests"]["memory"]) <= memory_bytes(
            resources["limits"]["memory"]
        )


def test_production_image_is_the_release_of_the_base_image() -> None:
    base_image = next(i for i in kustomization(K8S_BASE)["images"] if i["name"] == "bali-platform")
    (image,) = kustomization(PRODUCTION)["images"]
    # The base renamed the image already: the overlay must match the renamed one.
    assert image["name"] == base_image["newName"]
    assert image["newTag"] == project_version()


def test_strimzi_topics_are_the_catalogue_with_the_settings_of_the_topics_job() -> None:
    topics = yaml_documents(STRIMZI_TOPICS / "kafka-topics.yaml")
    assert {d["kind"] for d in topics} == {"KafkaTopic"}
    by_name = of_kind(topics, "KafkaTopic")
    assert set(by_name) == {spec.name for spec in all_topics()}
    replication, _ = base_kafka_settings()
    creations = job_topic_creations()
    for spec in all_topics():
        topic = by_name[spec.name]
        assert topic["spec"]["topicName"] == spec.name
        assert topic["spec"]["partitions"] == spec.partitions, spec.name
        assert topic["spec"]["replicas"] == replication, spec.name
        config = {key: str(value) for key, value in topic["spec"].get("config", {}).items()}
        assert config == creations[spec.name]["config"], f"{spec.name}: not the Job's config"


def test_strimzi_topics_live_with_the_cluster_the_services_connect_to() -> None:
    """Strimzi's bootstrap Service is <cluster>-kafka-bootstrap in the cluster's namespace."""
    _, bootstrap = base_kafka_settings()
    host = bootstrap.split(",")[0].rsplit(":", 1)[0]
    service, namespace = host.split(".")[:2]
    assert service.endswith("-kafka-bootstrap"), f"{host} is not a Strimzi bootstrap Service"
    cluster = service.removesuffix("-kafka-bootstrap")
    for topic in yaml_documents(STRIMZI_TOPICS / "kafka-topics.yaml"):
        assert topic["metadata"]["namespace"] == namespace, topic["metadata"]["name"]
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == cluster


def test_strimzi_component_removes_the_topics_job() -> None:
    job = topics_job()["metadata"]["name"]
    assert deletions(STRIMZI_TOPICS) == {("Job", job)}
    (entry,) = kustomization(STRIMZI_TOPICS)["patches"]
    assert entry["target"] == {"kind": "Job", "name": job}


def test_strimzi_overlay_is_production_with_the_strimzi_component() -> None:
    document = kustomization(PRODUCTION_STRIMZI)
    assert [(PRODUCTION_STRIMZI / r).resolve() for r in document["resources"]] == [PRODUCTION]
    assert [(PRODUCTION_STRIMZI / c).resolve() for c in document["components"]] == [STRIMZI_TOPICS]


def test_pod_monitor_scrapes_exactly_the_services() -> None:
    (monitor,) = yaml_documents(MONITORING / "pod-monitor.yaml")
    selector = monitor["spec"]["selector"]["matchLabels"]
    selected = {
        name
        for kind in ("Deployment", "Job")
        for name, owner in base_objects(kind).items()
        if selector.items() <= owner["spec"]["template"]["metadata"]["labels"].items()
    }
    assert selected == set(SETTINGS)
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    for name in SETTINGS:
        deployment = base_object("Deployment", name)
        pod = deployment["spec"]["template"]
        assert pod["metadata"]["annotations"]["prometheus.io/path"] == endpoint["path"]
        ports = {p.get("name") for p in containers(deployment)[name]["ports"]}
        assert endpoint["port"] in ports, name
        # The job label names the service, as the alert rules' `service` label does.
        assert pod["metadata"]["labels"][monitor["spec"]["jobLabel"]] == name


# --- rendered by kubectl kustomize ------------------------------------------------------------


def rendered_env(
    documents: list[dict[str, Any]], container: dict[str, Any]
) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """The container's variables from the rendered ConfigMaps, and those read from Secrets
    (which production creates out of band, so they get a stand-in value here)."""
    configmaps = of_kind(documents, "ConfigMap")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert "configMapRef" in source, f"unsupported envFrom {source}"
        env.update(
            {k: str(v) for k, v in configmaps[source["configMapRef"]["name"]]["data"].items()}
        )
    names = [variable["name"] for variable in container.get("env", [])]
    assert len(names) == len(set(names)), f"a variable is set twice: {names}"
    from_secrets = secret_refs(container)
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = str(variable["value"])
        elif variable["name"] in from_secrets:
            secret, key = from_secrets[variable["name"]]
            env[variable["name"]] = f"stand-in for {secret}/{key}"
        else:
            ref = variable["valueFrom"]["configMapKeyRef"]
            env[variable["name"]] = str(configmaps[ref["name"]]["data"][ref["key"]])
    return env, from_secrets


def test_production_renders_no_secret_and_no_placeholder() -> None:
    documents = rendered(PRODUCTION)
    assert not [d for d in documents if d["kind"] == "Secret"]
    assert "CHANGE-ME" not in yaml.safe_dump_all(documents)


def test_production_applies_its_patches() -> None:
    documents = rendered(PRODUCTION)
    deployments = of_kind(documents, "Deployment")
    hpas = of_kind(documents, "HorizontalPodAutoscaler")
    (image,) = kustomization(PRODUCTION)["images"]
    for name in SETTINGS:
        container = containers(deployments[name])[name]
        wanted = patched_container(PRODUCTION, name)
        assert container["resources"] == wanted["resources"], name
        for variable, ref in secret_refs(wanted).items():
            assert secret_refs(container)[variable] == ref, f"{name} {variable}"
        assert container["image"] == f"{image['newName']}:{image['newTag']}"
        assert "replicas" not in deployments[name]["spec"]
    for name, patch in hpa_patches(PRODUCTION).items():
        assert hpas[name]["spec"]["minReplicas"] == patch["spec"]["minReplicas"]
        assert hpas[name]["spec"]["maxReplicas"] == patch["spec"]["maxReplicas"]


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_production_migrates_and_waits_with_the_service_database_secret(name: str) -> None:
    """The migration Job and the init container reach the same database as the service."""
    documents = rendered(PRODUCTION)
    deployment = of_kind(documents, "Deployment")[name]
    service = containers(deployment)[name]
    (secret,) = {secret_refs(service)["BALI_DATABASE_URL"]}
    jobs = [
        container
        for job in of_kind(documents, "Job").values()
        for container in job["spec"]["template"]["spec"]["containers"]
        if container.get("command") == ["python", "-m", f"bali_{name}", "migrate"]
    ]
    waits = deployment["spec"]["template"]["spec"]["initContainers"]
    assert len(jobs) == 1
    assert len(waits) == 1
    for container in (*jobs, *waits):
        assert secret_refs(container)["BALI_DATABASE_URL"] == secret
        assert container["image"] == service["image"]


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_production_keeps_every_variable_the_base_gives(name: str) -> None:
    base_env, base_secrets = rendered_env(
        rendered(K8S_BASE), containers(of_kind(rendered(K8S_BASE), "Deployment")[name])[name]
    )
    production = rendered(PRODUCTION)
    env, secrets = rendered_env(
        production, containers(of_kind(production, "Deployment")[name])[name]
    )
    assert set(env) == set(base_env)
    assert set(secrets) == set(base_secrets)


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_production_services_load_their_settings_from_the_rendered_manifests(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    documents = rendered(PRODUCTION)
    env, from_secrets = rendered_env(
        documents, containers(of_kind(documents, "Deployment")[name])[name]
    )
    settings = settings_from_env(monkeypatch, SETTINGS[name], env)
    assert settings.service_name == name
    assert settings.environment == "production"
    assert settings.kafka_create_topics is False
    assert settings.database_url == f"stand-in for {'/'.join(from_secrets['BALI_DATABASE_URL'])}"


def test_production_puts_everything_in_the_platform_namespace() -> None:
    namespace = kustomization(K8S_BASE)["namespace"]
    assert kustomization(PRODUCTION)["namespace"] == namespace
    for document in rendered(PRODUCTION):
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == namespace, document["metadata"]["name"]


def test_production_adds_the_monitoring_resources() -> None:
    documents = rendered(PRODUCTION)
    base = rendered(K8S_BASE)
    added = Counter(d["kind"] for d in documents) - Counter(d["kind"] for d in base)
    assert added == Counter({"PrometheusRule": 1, "PodMonitor": 1})
    (rule,) = of_kind(documents, "PrometheusRule").values()
    assert rule == yaml_documents(MONITORING / "prometheus-rule.yaml")[0] | {
        "metadata": rule["metadata"]
    }


def test_strimzi_variant_is_production_with_kafka_topics_instead_of_the_job() -> None:
    production = rendered(PRODUCTION)
    strimzi = rendered(PRODUCTION_STRIMZI)
    job = topics_job()["metadata"]["name"]
    assert [d for d in strimzi if d["kind"] != "KafkaTopic"] == [
        d for d in production if (d["kind"], d["metadata"]["name"]) != ("Job", job)
    ]
    topics = of_kind(strimzi, "KafkaTopic")
    # The Topic Operator's namespace survives: no kustomization rewrites it to the platform's.
    assert topics == of_kind(yaml_documents(STRIMZI_TOPICS / "kafka-topics.yaml"), "KafkaTopic")
