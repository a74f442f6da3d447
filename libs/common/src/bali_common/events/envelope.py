"""CloudEvents 1.0 envelope with the Kafka protocol binding in binary content mode."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bali_common.events.registry import (
    REGISTRY,
    EventDefinition,
    EventPayload,
    UnknownEventType,
    dataschema_for,
)

KafkaHeaders = list[tuple[str, bytes]]

#: Binary mode maps each context attribute to a `ce_`-prefixed header (CloudEvents Kafka
#: binding 1.0, section 3.2.3); `content-type` carries datacontenttype.
CE_PREFIX = "ce_"
TRACEPARENT_HEADER = "traceparent"
_DATASCHEMA = re.compile(r"^urn:bali-process:events:(?P<type>[a-z_.]+):v(?P<version>\d+)$")


class InvalidEvent(ValueError):
    """A record that is not a valid event of ours: it goes to the dead-letter topic untried."""


class CloudEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: UUID = Field(default_factory=uuid4)
    source: str
    type: str
    subject: str
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str
    traceparent: str | None = None
    data: dict[str, Any]

    @classmethod
    def of(
        cls,
        payload: EventPayload,
        *,
        source: str,
        subject: str,
        traceparent: str | None = None,
    ) -> CloudEvent:
        return cls(
            source=source,
            type=payload.event_type,
            subject=subject,
            dataschema=dataschema_for(payload.event_type, payload.event_version),
            traceparent=traceparent,
            data=payload.model_dump(mode="json"),
        )

    @property
    def version(self) -> int:
        match = _DATASCHEMA.match(self.dataschema)
        if match is None or match["type"] != self.type:
            raise InvalidEvent(f"dataschema {self.dataschema!r} does not describe {self.type!r}")
        return int(match["version"])

    def definition(self) -> EventDefinition:
        try:
            return REGISTRY.get(self.type, self.version)
        except UnknownEventType as error:
            raise InvalidEvent(str(error)) from error

    def payload(self) -> EventPayload:
        """The data parsed by its registered model; a schema violation raises InvalidEvent."""
        try:
            return self.definition().model.model_validate(self.data)
        except ValidationError as error:
            raise InvalidEvent(f"{self.type} v{self.version}: {error}") from error

    def kafka_headers(self) -> KafkaHeaders:
        headers: KafkaHeaders = [
            (f"{CE_PREFIX}specversion", self.specversion.encode()),
            (f"{CE_PREFIX}id", str(self.id).encode()),
            (f"{CE_PREFIX}source", self.source.encode()),
            (f"{CE_PREFIX}type", self.type.encode()),
            (f"{CE_PREFIX}subject", self.subject.encode()),
            (f"{CE_PREFIX}time", self.time.astimezone(UTC).isoformat().encode()),
            (f"{CE_PREFIX}dataschema", self.dataschema.encode()),
            ("content-type", self.datacontenttype.encode()),
        ]
        if self.traceparent:
            headers.append((TRACEPARENT_HEADER, self.traceparent.encode()))
        return headers

    def kafka_key(self) -> bytes:
        """The aggregate id: one aggregate always lands on one partition, in order."""
        return self.subject.encode()

    def kafka_value(self) -> bytes:
        return json.dumps(self.data, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_kafka(
        cls, headers: Sequence[tuple[str, bytes]] | None, value: bytes | None
    ) -> CloudEvent:
        attributes = decode_headers(headers)
        if value is None:
            raise InvalidEvent("record has no value")
        try:
            data = json.loads(value)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InvalidEvent(f"body is not JSON: {error}") from error
        if not isinstance(data, dict):
            raise InvalidEvent("body is not a JSON object")
        context = {
            name[len(CE_PREFIX) :]: text
            for name, text in attributes.items()
            if name.startswith(CE_PREFIX)
        }
        if "content-type" in attributes:
            context["datacontenttype"] = attributes["content-type"].split(";")[0].strip()
        if TRACEPARENT_HEADER in attributes:
            context["traceparent"] = attributes[TRACEPARENT_HEADER]
        try:
            return cls.model_validate({**context, "data": data})
        except ValidationError as error:
            raise InvalidEvent(f"invalid CloudEvents attributes: {error}") from error


def decode_headers(headers: Sequence[tuple[str, bytes]] | None) -> dict[str, str]:
    decoded: dict[str, str] = {}
    for name, raw in headers or ():
        try:
            decoded[name] = raw.decode() if raw is not None else ""
        except UnicodeDecodeError as error:
            raise InvalidEvent(f"header {name!r} is not UTF-8") from error
    return decoded
