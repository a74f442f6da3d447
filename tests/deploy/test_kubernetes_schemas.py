"""deploy/kubernetes validated against the Kubernetes API schemas, strictly and offline.

kubernetes-validate bundles the schemas of each Kubernetes minor version (strict variants
refuse unknown fields), so nothing is fetched at test time. The base's files are validated as
they are; the overlays as `kubectl kustomize` renders them. Custom resources (Strimzi's
KafkaTopic, prometheus-operator's PrometheusRule and PodMonitor) are not in those schemas:
each is validated against a small, equally strict JSON schema written below from the
project's documented fields (Strimzi's KafkaTopic spec; prometheus-operator's API reference),
covering the fields these manifests may use.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from deploy_support import COMPONENTS, K8S_BASE, OVERLAYS, rendered, yaml_documents

#: The oldest Kubernetes these manifests support, and the newest the installed package knows,
#: so that an API removed in a later release shows up when the lock moves forward.
OLDEST_KUBERNETES = "1.30.0"
KUBERNETES_VERSIONS = (OLDEST_KUBERNETES, kubernetes_validate.latest_version())

_NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}


def _metadata(**labels_schema: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "name": _NAME,
            "namespace": _NAME,
            "labels": {**_STRING_MAP, **labels_schema},
            "annotations": _STRING_MAP,
        },
        "required": ["name"],
        "additionalProperties": False,
    }


def _resource(api_version: str, kind: str, metadata: dict[str, Any], spec: dict[str, Any]) -> Any:
    return {
        "type": "object",
        "properties": {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": metadata,
            "spec": spec,
        },
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
    }


#: Strimzi KafkaTopic (kafka.strimzi.io/v1beta2): the spec's four fields, and the label that
#: names the Kafka cluster, without which no Topic Operator takes the resource.
KAFKA_TOPIC_SCHEMA = _resource(
    "kafka.strimzi.io/v1beta2",
    "KafkaTopic",
    _metadata(required=["strimzi.io/cluster"]),
    {
        "type": "object",
        "properties": {
            "topicName": {"type": "string", "minLength": 1},
            "partitions": {"type": "integer", "minimum": 1},
            "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
            "config": {
                "type": "object",
                "additionalProperties": {"type": ["string", "integer", "number", "boolean"]},
            },
        },
        "additionalProperties": False,
    },
)

_DURATION = {"type": "string", "pattern": r"^(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$"}
_RULE = {
    "type": "object",
    "properties": {
        "alert": {"type": "string", "minLength": 1},
        "record": {"type": "string", "minLength": 1},
        "expr": {"type": ["string", "integer"]},
        "for": _DURATION,
        "keep_firing_for": _DURATION,
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
    "required": ["expr"],
    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
    "additionalProperties": False,
}

#: prometheus-operator PrometheusRule (monitoring.coreos.com/v1): RuleGroup and Rule.
PROMETHEUS_RULE_SCHEMA = _resource(
    "monitoring.coreos.com/v1",
    "PrometheusRule",
    _metadata(),
    {
        "type": "object",
        "properties": {
            "groups": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "minLength": 1},
                        "interval": _DURATION,
                        "query_offset": _DURATION,
                        "limit": {"type": "integer", "minimum": 0},
                        "partial_response_strategy": {"type": "string"},
                        "labels": _STRING_MAP,
                        "rules": {"type": "array", "items": _RULE},
                    },
                    "required": ["name"],
                    "additionalProperties": False,
                },
            }
        },
        "additionalProperties": False,
    },
)

_LABEL_SELECTOR = {
    "type": "object",
    "properties": {
        "matchLabels": _STRING_MAP,
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "key": {"type": "string"},
                    "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["key", "operator"],
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}

#: prometheus-operator SafeAuthorization: a credential from a Secret of the monitor's namespace.
_SAFE_AUTHORIZATION = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "credentials": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "key": {"type": "string", "minLength": 1},
                "optional": {"type": "boolean"},
            },
            "required": ["key"],
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}

#: prometheus-operator PodMonitor (monitoring.coreos.com/v1): the PodMonitorSpec and
#: PodMetricsEndpoint fields short of relabelling and the other authentication schemes, which
#: these manifests do not use (add them from the API reference when they do).
POD_MONITOR_SCHEMA = _resource(
    "monitoring.coreos.com/v1",
    "PodMonitor",
    _metadata(),
    {
        "type": "object",
        "properties": {
            "jobLabel": {"type": "string"},
            "podTargetLabels": {"type": "array", "items": {"type": "string"}},
            "selector": _LABEL_SELECTOR,
            "namespaceSelector": {
                "type": "object",
                "properties": {
                    "any": {"type": "boolean"},
                    "matchNames": {"type": "array", "items": {"type": "string"}},
                },
                "additionalProperties": False,
            },
            "podMetricsEndpoints": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "port": {"type": "string"},
                        "portNumber": {"type": "integer", "minimum": 1, "maximum": 65535},
                        "path": {"type": "string", "pattern": "^/"},
                        "scheme": {"enum": ["http", "https"]},
                        "interval": _DURATION,
                        "scrapeTimeout": _DURATION,
                        "honorLabels": {"type": "boolean"},
                        "honorTimestamps": {"type": "boolean"},
                        "authorization": _SAFE_AUTHORIZATION,
                    },
                    "additionalProperties": False,
                },
            },
        },
        "required": ["selector"],
        "additionalProperties": False,
    },
)

CUSTOM_RESOURCE_SCHEMAS: dict[tuple[str, str], Any] = {
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"): KAFKA_TOPIC_SCHEMA,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PROMETHEUS_RULE_SCHEMA,
    ("monitoring.coreos.com/v1", "PodMonitor"): POD_MONITOR_SCHEMA,
}


def schema_errors(document: dict[str, Any], version: str) -> list[str]:
    """Why `document` is not a valid object of its kind (empty when it is)."""
    name = f"{document.get('kind')} {document.get('metadata', {}).get('name')}"
    custom = CUSTOM_RESOURCE_SCHEMAS.get((document.get("apiVersion", ""), document.get("kind", "")))
    if custom is not None:
        validator = jsonschema.Draft202012Validator(custom)
        return [
            f"{name}: {'/'.join(map(str, error.absolute_path))}: {error.message}"
            for error in validator.iter_errors(document)
        ]
    try:
        kubernetes_validate.validate(document, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{name}: {'/'.join(map(str, error.absolute_path))}: {error.message}"]
    except kubernetes_validate.SchemaNotFoundError as error:
        return [f"{name}: {error.message} (a custom resource needs a schema in this file)"]
    return []


def documents_of(directory: Path) -> list[dict[str, Any]]:
    return [d for path in sorted(directory.glob("*.yaml")) for d in yaml_documents(path)]


# --- the validation itself ----------------------------------------------------------------


def test_the_kubernetes_versions_are_among_the_bundled_schemas() -> None:
    bundled = kubernetes_validate.utils.all_versions()
    for version in KUBERNETES_VERSIONS:
        assert kubernetes_validate.utils.major_minor(version) in {
            kubernetes_validate.utils.major_minor(v) for v in bundled
        }, f"kubernetes-validate bundles {bundled}, not {version}: pin a version that does"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_strict_validation_refuses_an_unknown_field(version: str) -> None:
    deployment = copy.deepcopy(next(d for d in documents_of(K8S_BASE) if d["kind"] == "Deployment"))
    assert schema_errors(deployment, version) == []
    deployment["spec"]["template"]["spec"]["containers"][0]["envFrm"] = []
    assert any("envFrm" in error for error in schema_errors(deployment, version))


def test_custom_resource_schemas_refuse_unknown_and_missing_fields() -> None:
    topic = copy.deepcopy(yaml_documents(COMPONENTS / "strimzi-topics" / "kafka-topics.yaml")[0])
    assert schema_errors(topic, OLDEST_KUBERNETES) == []
    topic["spec"]["partition"] = 6
    assert any("partition" in error for error in schema_errors(topic, OLDEST_KUBERNETES))
    del topic["spec"]["partition"]
    del topic["metadata"]["labels"]["strimzi.io/cluster"]
    assert any("strimzi.io/cluster" in error for error in schema_errors(topic, OLDEST_KUBERNETES))
    rule = copy.deepcopy(yaml_documents(COMPONENTS / "monitoring" / "prometheus-rule.yaml")[0])
    assert schema_errors(rule, OLDEST_KUBERNETES) == []
    rule["spec"]["groups"][0]["rules"][0]["severity"] = "critical"
    assert any("severity" in error for error in schema_errors(rule, OLDEST_KUBERNETES))


def test_a_kind_without_any_schema_is_refused() -> None:
    unknown = {"apiVersion": "example.org/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert schema_errors(unknown, OLDEST_KUBERNETES)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_base_manifest_validates_strictly(version: str) -> None:
    documents = documents_of(K8S_BASE)
    manifests = [d for d in documents if d["kind"] != "Kustomization"]
    assert len(manifests) == len(documents) - 1
    errors = [e for d in manifests for e in schema_errors(d, version)]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("component", sorted(p.name for p in COMPONENTS.iterdir()))
def test_every_component_resource_validates_strictly(component: str) -> None:
    documents = [d for d in documents_of(COMPONENTS / component) if d["kind"] != "Component"]
    assert documents
    errors = [e for d in documents for e in schema_errors(d, OLDEST_KUBERNETES)]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(
    "directory",
    [K8S_BASE, *sorted(p for p in OVERLAYS.iterdir() if p.is_dir())],
    ids=lambda p: p.name,
)
def test_every_rendered_document_validates_strictly(directory: Path, version: str) -> None:
    documents = rendered(directory)
    assert documents
    errors = [e for d in documents for e in schema_errors(d, version)]
    assert not errors, "\n".join(errors)
