"""deploy/prometheus/scrape-config.yaml and the PodMonitor, cross-checked against the
manifests: they scrape the services' /metrics with the token the services are given."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import yaml
from deploy_support import COMPONENTS, K8S_BASE, OVERLAYS, ROOT, SETTINGS, yaml_documents

SCRAPE_CONFIG = ROOT / "deploy" / "prometheus" / "scrape-config.yaml"


def production_token_refs() -> set[tuple[str, str]]:
    """(Secret, key) from which the production overlay gives each service BALI_METRICS_TOKEN."""
    refs = set()
    for document in yaml_documents(OVERLAYS / "production" / "secrets.yaml"):
        for container in document["spec"]["template"]["spec"]["containers"]:
            for variable in container.get("env", []):
                if variable["name"] == "BALI_METRICS_TOKEN":
                    ref = variable["valueFrom"]["secretKeyRef"]
                    refs.add((ref["name"], ref["key"]))
    return refs


def job() -> dict[str, Any]:
    (only,) = yaml.safe_load(SCRAPE_CONFIG.read_text())["scrape_configs"]
    assert isinstance(only, dict)
    return only


def test_every_service_gets_one_metrics_token_in_production() -> None:
    names = {
        document["metadata"]["name"]
        for document in yaml_documents(OVERLAYS / "production" / "secrets.yaml")
        if any(
            v["name"] == "BALI_METRICS_TOKEN"
            for c in document["spec"]["template"]["spec"]["containers"]
            for v in c.get("env", [])
        )
    }
    assert names == set(SETTINGS)
    assert len(production_token_refs()) == 1


def test_pod_monitor_presents_the_services_token() -> None:
    (monitor,) = yaml_documents(COMPONENTS / "monitoring" / "pod-monitor.yaml")
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    credentials = endpoint["authorization"]["credentials"]
    assert endpoint["authorization"]["type"] == "Bearer"
    assert {(credentials["name"], credentials["key"])} == production_token_refs()


def test_scrape_job_presents_the_token_and_reads_the_pod_annotations() -> None:
    scrape = job()
    ((secret, key),) = production_token_refs()
    path = PurePosixPath(scrape["authorization"]["credentials_file"])
    assert (path.parent.name, path.name) == (secret, key)
    assert scrape["kubernetes_sd_configs"][0]["namespaces"]["names"] == [
        yaml.safe_load((K8S_BASE / "kustomization.yaml").read_text())["namespace"]
    ]
    read = {label for rule in scrape["relabel_configs"] for label in rule["source_labels"]}
    for name in SETTINGS:
        (deployment,) = yaml_documents(K8S_BASE / f"{name}.yaml")[:1]
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        for annotation in annotations:
            suffix = annotation.replace(".", "_").replace("/", "_")
            assert f"__meta_kubernetes_pod_annotation_{suffix}" in read, annotation
