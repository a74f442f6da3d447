"""Registry from event type and schema version to the pydantic model that is its contract."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

from bali_common.events.topics import Stream


class EventPayload(BaseModel):
    """Base of every event payload.

    Unknown fields are ignored so that additive changes (same version) never
    break an older consumer; missing or mistyped fields fail validation and the
    event goes to the dead-letter topic.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_type: ClassVar[str]
    event_version: ClassVar[int]
    stream: ClassVar[Stream]


@dataclass(frozen=True)
class EventDefinition:
    type: str
    version: int
    stream: Stream
    model: builtins.type[EventPayload]

    @property
    def dataschema(self) -> str:
        return dataschema_for(self.type, self.version)

    @property
    def description(self) -> str:
        return (self.model.__doc__ or self.type).strip().splitlines()[0]


def dataschema_for(event_type: str, version: int) -> str:
    return f"urn:bali-process:events:{event_type}:v{version}"


class UnknownEventType(LookupError):
    pass


class EventRegistry:
    def __init__(self) -> None:
        self._definitions: dict[tuple[str, int], EventDefinition] = {}

    def add(self, definition: EventDefinition) -> None:
        key = (definition.type, definition.version)
        existing = self._definitions.get(key)
        if existing is not None and existing.model is not definition.model:
            raise ValueError(f"event {definition.type} v{definition.version} declared twice")
        self._definitions[key] = definition

    def get(self, event_type: str, version: int) -> EventDefinition:
        try:
            return self._definitions[(event_type, version)]
        except KeyError:
            raise UnknownEventType(f"unknown event type {event_type!r} v{version}") from None

    def __iter__(self) -> Iterator[EventDefinition]:
        return iter(sorted(self._definitions.values(), key=lambda d: (d.stream, d.type, d.version)))

    def types_of(self, stream: Stream) -> list[EventDefinition]:
        return [d for d in self if d.stream is stream]


#: The one registry: event modules register their models here at import.
REGISTRY = EventRegistry()

PayloadT = TypeVar("PayloadT", bound=EventPayload)


def event_type(
    type_: str, *, stream: Stream, version: int = 1
) -> Callable[[type[PayloadT]], type[PayloadT]]:
    """Declare a model as the payload of `type_` (past tense: `activity.created`)."""

    def register(model: type[PayloadT]) -> type[PayloadT]:
        model.event_type = type_
        model.event_version = version
        model.stream = stream
        REGISTRY.add(EventDefinition(type=type_, version=version, stream=stream, model=model))
        return model

    return register
