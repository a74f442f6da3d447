"""docs/operations.md, cross-checked against the manifests, the alert rules and the code."""

from __future__ import annotations

import functools
import importlib
import re
import shlex
from typing import Any

import pytest
import yaml
from bali_common.events.topics import STREAM_TOPICS, all_topics
from bali_common.runtime import ServiceDefinition, runtime_of
from deploy_support import OPERATIONS_DOC, OVERLAYS, RULES_FILE, SETTINGS, yaml_documents

PRODUCTION = OVERLAYS / "production"


@functools.cache
def doc() -> str:
    return OPERATIONS_DOC.read_text()


def headings(level: int) -> list[str]:
    return re.findall(rf"^{'#' * level} (.+)$", doc(), re.M)


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, spaces to dashes, punctuation dropped."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES_FILE.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def definitions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ServiceDefinition]:
    """What each service's composition root declares: consumer groups and published streams."""
    data_dir = tmp_path_factory.mktemp("data")
    found = {}
    for name, settings_class in SETTINGS.items():
        app = importlib.import_module(f"bali_{name}.app").create_app(
            settings_class(data_dir=data_dir)
        )
        found[name] = runtime_of(app).definition
    return found


def documented_secrets() -> set[tuple[str, str]]:
    """(Secret, key) of every `kubectl create secret generic` in the document."""
    created = set()
    for command in doc().replace("\\\n", " ").splitlines():
        if "create secret generic" not in command:
            continue
        args = shlex.split(command)
        name = args[args.index("generic") + 1]
        for arg in args:
            if arg.startswith("--from-literal="):
                created.add((name, arg.removeprefix("--from-literal=").split("=", 1)[0]))
    return created


def partition_table() -> dict[str, tuple[int, set[str]]]:
    """Topic -> (partitions, consumer groups) from the table of the Scale section."""
    rows = re.findall(r"^\| `([\w.-]+)` \| (\d+) \| (.+) \|$", doc(), re.M)
    return {
        topic: (int(partitions), set(re.findall(r"`([\w.-]+)`", groups)))
        for topic, partitions, groups in rows
    }


# --- the tests --------------------------------------------------------------------------------


def test_every_alert_rule_has_a_section_its_runbook_points_to() -> None:
    sections = {h for h in headings(3) if h.startswith("Bali")}
    names = {rule["alert"] for rule in alert_rules()}
    assert sections == names, f"missing {names - sections}, stale {sections - names}"
    for rule in alert_rules():
        assert rule["annotations"]["runbook"] == f"docs/operations.md#{anchor(rule['alert'])}"


def test_internal_links_point_to_headings() -> None:
    anchors = {anchor(h) for level in (2, 3) for h in headings(level)}
    for target in re.findall(r"\]\(#([\w-]+)\)", doc()):
        assert target in anchors, f"no heading for #{target}"


def test_documented_secrets_are_the_ones_production_reads() -> None:
    referenced = {
        (ref["name"], ref["key"])
        for path in PRODUCTION.glob("*.yaml")
        if path.name != "kustomization.yaml"
        for document in yaml_documents(path)
        if document["kind"] == "Deployment"
        for container in document["spec"]["template"]["spec"]["containers"]
        for variable in container.get("env", [])
        if (ref := variable.get("valueFrom", {}).get("secretKeyRef"))
    }
    assert referenced
    assert documented_secrets() == referenced


def test_partition_table_is_the_catalogue_and_the_services_consumer_groups(
    definitions: dict[str, ServiceDefinition],
) -> None:
    consumers: dict[str, set[str]] = {spec.name: set() for spec in all_topics()}
    for definition in definitions.values():
        for group in definition.consumer_groups:
            for stream in group.streams:
                consumers[STREAM_TOPICS[stream].name].add(group.name)
    assert partition_table() == {
        spec.name: (spec.partitions, consumers[spec.name]) for spec in all_topics()
    }


def test_restore_section_names_the_services_that_publish(
    definitions: dict[str, ServiceDefinition],
) -> None:
    publishing = sorted(name for name, definition in definitions.items() if definition.publishes)
    assert f"A publishing service ({', '.join(publishing)})" in doc()
    consumer_only = set(SETTINGS) - set(publishing)
    assert consumer_only == {"reporting"}, "the document lets reporting alone be restored alone"
