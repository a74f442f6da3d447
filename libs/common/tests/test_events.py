"""Event contracts: CloudEvents binding, registry, AsyncAPI document, contract fixtures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bali_common.events import REGISTRY, CloudEvent, InvalidEvent, Stream
from bali_common.events.alerts import AlertRaised
from bali_common.events.asyncapi import build_asyncapi, message_id
from bali_common.events.topics import STREAM_TOPICS, all_topics

CONTRACTS = Path(__file__).parent / "contracts"


def test_cloud_event_round_trips_through_kafka_binary_mode() -> None:
    fixture = json.loads((CONTRACTS / "alert.raised.v1.json").read_text())
    payload = AlertRaised.model_validate(fixture)
    event = CloudEvent.of(payload, source="/bali/consultation", subject="alert-1")
    headers = event.kafka_headers()
    names = [name for name, _ in headers]
    assert names[:7] == [
        "ce_specversion",
        "ce_id",
        "ce_source",
        "ce_type",
        "ce_subject",
        "ce_time",
        "ce_dataschema",
    ]
    assert ("content-type", b"application/json") in headers
    assert event.kafka_key() == b"alert-1"
    decoded = CloudEvent.from_kafka(headers, event.kafka_value())
    assert decoded == event
    assert decoded.payload() == payload
    assert decoded.version == 1


@pytest.mark.parametrize(
    ("headers", "value", "reason"),
    [
        ([], b"{}", "invalid CloudEvents attributes"),
        ([("ce_type", b"alert.raised")], b"[1]", "not a JSON object"),
        ([("ce_id", b"\xff")], b"{}", "not UTF-8"),
        ([], b"{nope", "not JSON"),
        ([], None, "no value"),
    ],
)
def test_records_that_are_not_our_events_are_rejected(
    headers: list[tuple[str, bytes]], value: bytes | None, reason: str
) -> None:
    with pytest.raises(InvalidEvent, match=reason):
        CloudEvent.from_kafka(headers, value)


def test_payload_that_violates_its_schema_is_rejected() -> None:
    event = CloudEvent(
        source="/x",
        type="alert.raised",
        subject="a",
        dataschema="urn:bali-process:events:alert.raised:v1",
        data={"alert": {"alert_id": 1}},
    )
    with pytest.raises(InvalidEvent, match=r"alert\.raised v1"):
        event.payload()
    unknown = event.model_copy(
        update={"type": "alert.vanished", "dataschema": "urn:bali-process:events:alert.vanished:v1"}
    )
    with pytest.raises(InvalidEvent, match="unknown event type"):
        unknown.payload()


def test_every_registered_event_has_a_contract_fixture_that_still_parses() -> None:
    """One fixture per event type and version: a breaking change to a model fails here."""
    missing = []
    for definition in REGISTRY:
        if definition.type.startswith(("probe.", "bench.")):
            continue
        path = CONTRACTS / f"{message_id(definition)}.json"
        if not path.exists():
            missing.append(path.name)
            continue
        definition.model.model_validate(json.loads(path.read_text()))
    assert missing == []


def test_asyncapi_document_covers_every_topic_and_event_and_resolves_its_references() -> None:
    document = build_asyncapi(topic_prefix="dev.")
    assert document["asyncapi"] == "3.0.0"
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == {f"dev.{spec.name}" for spec in all_topics()}
    for stream in Stream:
        channel = document["channels"][stream.value]
        assert channel["bindings"]["kafka"]["partitions"] == STREAM_TOPICS[stream].partitions
        expected = {message_id(d) for d in REGISTRY.types_of(stream)}
        assert set(channel["messages"]) == expected
    for ref in _refs(document):
        _resolve(document, ref)


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        assert part in node, f"unresolved reference {ref}"
        node = node[part]
    return node
