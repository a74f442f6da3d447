"""deploy/prometheus/rules.yaml, cross-checked against the metrics the services expose.

The expressions are parsed with promql-parser: every series a rule reads must be one the
services' registries render, with the labels it matches or groups on. promtool (Debian's
prometheus package) checks the file and runs the scenarios of prometheus_rules_scenarios.yaml
where it is installed; the structure is checked in plain Python everywhere.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from bali_common.events.topics import all_topics
from bali_common.metrics import ServiceMetrics
from bali_consultation.metrics import ResponseMetrics
from bali_notifications.metrics import NotificationMetrics
from deploy_support import (
    COMPONENTS,
    ROOT,
    RULES_FILE,
    code_string_literals,
    yaml_documents,
)
from prometheus_client import generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

SCENARIOS = Path(__file__).with_name("prometheus_rules_scenarios.yaml")
#: Labels Prometheus itself puts on every scraped series.
TARGET_LABELS = frozenset({"instance", "job"})
SEVERITIES = frozenset({"critical", "warning"})
RULE_KEYS = frozenset({"alert", "expr", "for", "labels", "annotations"})
ANNOTATIONS = frozenset({"summary", "description", "runbook"})


# --- helpers ----------------------------------------------------------------------------------


@functools.cache
def rules_document() -> dict[str, Any]:
    document = yaml.safe_load(RULES_FILE.read_text())
    assert isinstance(document, dict)
    return document


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in rules_document()["groups"] for rule in group["rules"]]


@functools.cache
def exposed_series() -> dict[str, frozenset[str]]:
    """Series name -> label names, as the services' registries render them at /metrics."""
    metrics = ServiceMetrics("consultation")
    holders = [
        metrics,
        ResponseMetrics(metrics.registry),
        NotificationMetrics(metrics.registry),
    ]
    for holder in holders:
        for metric in vars(holder).values():
            if isinstance(metric, MetricWrapperBase):
                # A labelled metric renders nothing until a child exists; prometheus_client
                # keeps the label names only in this attribute.
                names = metric._labelnames
                if names:
                    metric.labels(*["x"] * len(names))
    series: dict[str, set[str]] = {}
    text = generate_latest(metrics.registry).decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return {name: frozenset(labels) for name, labels in series.items()}


def selectors(expr: str) -> list[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def selector_name(selector: promql_parser.VectorSelector) -> str:
    if selector.name:
        return selector.name
    names = [m.value for m in selector.matchers.matchers if m.name == "__name__"]
    assert len(names) == 1, f"{selector} names no single metric"
    return str(names[0])


def grouping_labels(expr: str) -> set[str]:
    """Labels named in by/without, on/ignoring and group_left/group_right."""
    labels: set[str] = set()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            labels.update(node.modifier.labels)
        if isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None:
            if node.modifier.matching is not None:
                labels.update(node.modifier.matching.labels)
            labels.update(node.modifier.group_labels or [])

    promql_parser.walk(promql_parser.parse(expr), visit)
    return labels


def promtool() -> str | None:
    """promtool on PATH, or unpacked from Debian's prometheus package by .ci/run."""
    unpacked = ROOT / ".tools" / "prometheus" / "usr" / "bin" / "promtool"
    return shutil.which("promtool") or (str(unpacked) if unpacked.is_file() else None)


def promtool_or_skip() -> str:
    path = promtool()
    if path is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    return path


# --- structure --------------------------------------------------------------------------------


def test_rules_file_is_groups_of_alerts_with_the_required_keys() -> None:
    assert set(rules_document()) == {"groups"}
    group_names = [group["name"] for group in rules_document()["groups"]]
    assert len(group_names) == len(set(group_names))
    for group in rules_document()["groups"]:
        assert set(group) == {"name", "rules"}, group["name"]
        assert group["rules"], f"group {group['name']} is empty"
    names = [rule.get("alert") for rule in alert_rules()]
    assert len(names) == len(set(names)), "an alert name is used twice"
    for rule in alert_rules():
        name = rule.get("alert")
        assert isinstance(name, str), f"not an alert rule: {rule}"
        assert re.fullmatch(r"Bali[A-Z][A-Za-z]+", name), name
        assert set(rule) <= RULE_KEYS, f"{name}: unknown keys {set(rule) - RULE_KEYS}"
        assert set(rule["labels"]) == {"severity"}, name
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert set(rule["annotations"]) == ANNOTATIONS, name
        assert all(str(text).strip() for text in rule["annotations"].values()), name


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_rule_expression_parses_and_its_duration_is_sensible(rule: dict[str, Any]) -> None:
    promql_parser.parse(rule["expr"])
    if "for" in rule:
        duration = promql_parser.parse_duration(rule["for"])
        assert timedelta(minutes=1) <= duration <= timedelta(hours=1), rule["alert"]


def test_the_parser_refuses_a_broken_expression() -> None:
    with pytest.raises(ValueError):
        promql_parser.parse("sum by (service) (rate(bali_outbox_backlog[5m])")


# --- against the code -------------------------------------------------------------------------


def test_exposed_series_are_read_from_the_rendered_registries() -> None:
    series = exposed_series()
    assert series["bali_outbox_backlog"] == frozenset()
    assert series["bali_consumer_lag"] == {"group", "topic", "partition"}
    assert "bali_events_dead_lettered_total" in series
    assert "bali_alert_seconds_to_acknowledge_bucket" in series
    assert "bali_events_dead_lettered" not in series


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_every_series_a_rule_reads_is_exposed_by_the_services(rule: dict[str, Any]) -> None:
    series = exposed_series()
    for selector in selectors(rule["expr"]):
        name = selector_name(selector)
        assert name in series, f"{rule['alert']}: no service exposes {name}"
        for matcher in selector.matchers.matchers:
            if matcher.name != "__name__":
                assert matcher.name in series[name] | TARGET_LABELS, (
                    f"{rule['alert']}: {name} has no label {matcher.name}"
                )


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_every_label_a_rule_groups_on_is_on_its_series(rule: dict[str, Any]) -> None:
    series = exposed_series()
    available = set(TARGET_LABELS)
    for selector in selectors(rule["expr"]):
        available |= series[selector_name(selector)]
    missing = grouping_labels(rule["expr"]) - available
    assert not missing, f"{rule['alert']}: {sorted(missing)} on none of its series"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_every_label_value_a_rule_matches_occurs_in_the_code(rule: dict[str, Any]) -> None:
    topics = [spec.name for spec in all_topics()]
    for selector in selectors(rule["expr"]):
        for matcher in selector.matchers.matchers:
            where = f"{rule['alert']}: {matcher.name}"
            if matcher.op in (promql_parser.MatchOp.Equal, promql_parser.MatchOp.NotEqual):
                assert matcher.value in code_string_literals(), f"{where}={matcher.value!r}"
            elif matcher.name == "topic":
                pattern = re.compile(matcher.value)
                assert any(pattern.fullmatch(topic) for topic in topics), where
            elif matcher.name == "route":
                for route in matcher.value.split("|"):
                    assert route in code_string_literals(), f"{where}: no route {route}"
            else:
                re.compile(matcher.value)


# --- promtool ---------------------------------------------------------------------------------


def test_promtool_accepts_the_rules_file() -> None:
    result = subprocess.run(
        [promtool_or_skip(), "check", "rules", str(RULES_FILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_scenario_that_fires_it_and_one_that_does_not() -> None:
    scenarios = yaml.safe_load(SCENARIOS.read_text())
    assert scenarios["rule_files"] == [RULES_FILE.name]
    fires: set[str] = set()
    quiet: set[str] = set()
    for test in scenarios["tests"]:
        for check in test["alert_rule_test"]:
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert fires == names, f"no firing scenario for {sorted(names - fires)}"
    assert quiet == names, f"no quiet scenario for {sorted(names - quiet)}"


def test_promtool_runs_the_scenarios(tmp_path: Path) -> None:
    tool = promtool_or_skip()
    # promtool compares annotations exactly; the scenarios test expressions and labels.
    stripped = yaml.safe_load(RULES_FILE.read_text())
    for group in stripped["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations")
    (tmp_path / RULES_FILE.name).write_text(yaml.safe_dump(stripped))
    shutil.copy(SCENARIOS, tmp_path / SCENARIOS.name)
    result = subprocess.run(
        [tool, "test", "rules", SCENARIOS.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- the PrometheusRule -----------------------------------------------------------------------


def test_prometheus_rule_resource_holds_the_rules_file_unchanged() -> None:
    (resource,) = yaml_documents(COMPONENTS / "monitoring" / "prometheus-rule.yaml")
    assert resource["kind"] == "PrometheusRule"
    assert resource["spec"] == rules_document(), (
        "components/monitoring/prometheus-rule.yaml must hold deploy/prometheus/rules.yaml's "
        "groups unchanged"
    )
