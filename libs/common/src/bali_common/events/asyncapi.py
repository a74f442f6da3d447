"""The AsyncAPI 3.0 document of every topic and event, generated from the models (never by hand)."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from bali_common.events.registry import REGISTRY, EventDefinition
from bali_common.events.topics import DEAD_LETTER_TOPIC, STREAM_TOPICS

_REF = "#/components/schemas/{model}"

_CLOUDEVENTS_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "CloudEvents 1.0 Kafka protocol binding, binary content mode",
    "required": [
        "ce_specversion",
        "ce_id",
        "ce_source",
        "ce_type",
        "ce_subject",
        "ce_time",
        "ce_dataschema",
        "content-type",
    ],
    "properties": {
        "ce_specversion": {"type": "string", "const": "1.0"},
        "ce_id": {"type": "string", "format": "uuid", "description": "Unique event id"},
        "ce_source": {"type": "string", "description": "Publishing service, e.g. /bali/activities"},
        "ce_type": {"type": "string"},
        "ce_subject": {"type": "string", "description": "Aggregate id (also the record key)"},
        "ce_time": {"type": "string", "format": "date-time"},
        "ce_dataschema": {"type": "string", "description": "urn:bali-process:events:TYPE:vN"},
        "content-type": {"type": "string", "const": "application/json"},
        "traceparent": {"type": "string", "description": "W3C trace context"},
    },
}


def message_id(definition: EventDefinition) -> str:
    return f"{definition.type}.v{definition.version}"


def build_asyncapi(*, topic_prefix: str = "", version: str = "0.1.0") -> dict[str, Any]:
    definitions = list(REGISTRY)
    _, schema_document = models_json_schema(
        [(d.model, "serialization") for d in definitions], ref_template=_REF
    )
    schemas: dict[str, Any] = dict(schema_document.get("$defs", {}))
    messages: dict[str, Any] = {}
    for definition in definitions:
        headers = dict(_CLOUDEVENTS_HEADERS)
        headers["properties"] = {
            **_CLOUDEVENTS_HEADERS["properties"],
            "ce_type": {"type": "string", "const": definition.type},
            "ce_dataschema": {"type": "string", "const": definition.dataschema},
        }
        messages[message_id(definition)] = {
            "name": definition.type,
            "title": definition.model.__name__,
            "summary": definition.description,
            "contentType": "application/json",
            "headers": headers,
            "payload": {"$ref": _REF.format(model=definition.model.__name__)},
            "bindings": {"kafka": {"key": {"type": "string"}, "bindingVersion": "0.5.0"}},
        }
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for stream, spec in STREAM_TOPICS.items():
        stream_messages = {
            message_id(d): {"$ref": f"#/components/messages/{message_id(d)}"}
            for d in definitions
            if d.stream is stream
        }
        channels[stream.value] = {
            "address": spec.qualified(topic_prefix),
            "description": spec.description,
            "messages": stream_messages,
            "bindings": {"kafka": {"partitions": spec.partitions, "bindingVersion": "0.5.0"}},
        }
        operations[f"publish_{stream.value}"] = {
            "action": "send",
            "summary": f"Published by the {spec.producer} service through its outbox",
            "channel": {"$ref": f"#/channels/{stream.value}"},
            "messages": [
                {"$ref": f"#/channels/{stream.value}/messages/{name}"} for name in stream_messages
            ],
        }
    channels["dead_letters"] = {
        "address": DEAD_LETTER_TOPIC.qualified(topic_prefix),
        "description": DEAD_LETTER_TOPIC.description
        + "; original headers plus dlt-group, dlt-original-topic, dlt-original-partition, "
        "dlt-original-offset, dlt-attempts, dlt-error",
        "bindings": {
            "kafka": {"partitions": DEAD_LETTER_TOPIC.partitions, "bindingVersion": "0.5.0"}
        },
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Bali Process Cooperation Platform events",
            "version": version,
            "description": "Every topic and event of the platform. Events are CloudEvents 1.0 "
            "in Kafka binary mode, keyed by aggregate id; each aggregate is ordered within "
            "its partition.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "embedded": {"host": "127.0.0.1:19092", "protocol": "kafka"},
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }
