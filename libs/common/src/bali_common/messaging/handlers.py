"""Event handlers of a service, registered by the payload classes they take.

A service declares `handlers = EventHandlers()` and decorates each handler with
`@handlers.on(MemberRegistered, MemberUpdated)`. One event may feed several
handlers (one per projection, say): they run in registration order inside the
consumer runner's one transaction, so the event is applied by all or by none.
`handlers.consumer_group("reporting.projections")` is what the runtime starts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession

from bali_common.events.envelope import CloudEvent
from bali_common.events.registry import REGISTRY, EventDefinition, EventPayload
from bali_common.events.topics import Stream

PayloadT = TypeVar("PayloadT", bound=EventPayload)

#: Applies one event inside the runner's transaction; it must not commit.
Handler = Callable[[AsyncSession, CloudEvent, Any], Awaitable[None]]
TypedHandler = Callable[[AsyncSession, CloudEvent, PayloadT], Awaitable[None]]


@dataclass(frozen=True)
class ConsumerGroup:
    """One Kafka consumer group of a service: its topics and, per event type and version,
    the handlers to run in order. The composition root lists these."""

    name: str
    streams: Sequence[Stream]
    routes: Mapping[tuple[str, int], Sequence[Handler]]

    def handles_type(self, event_type: str) -> bool:
        return any(routed_type == event_type for routed_type, _ in self.routes)

    def handlers_for(self, event_type: str, version: int) -> Sequence[Handler]:
        return self.routes.get((event_type, version), ())


@dataclass(frozen=True)
class _Registration:
    payloads: tuple[type[EventPayload], ...]
    handler: Handler

    def takes(self, definition: EventDefinition) -> bool:
        return issubclass(definition.model, self.payloads)


class EventHandlers:
    """The handlers of one consumer group, typed on the payload classes they take.

    A class matches every registered event whose model is that class or a subclass,
    so `@handlers.on(AlertEvent)` takes every alert event and
    `@handlers.on(EventPayload)` every event of every stream.
    """

    def __init__(self) -> None:
        self._registrations: list[_Registration] = []

    def on(
        self, *payloads: type[PayloadT]
    ) -> Callable[[TypedHandler[PayloadT]], TypedHandler[PayloadT]]:
        if not payloads:
            raise TypeError("name at least one payload class the handler takes")

        def register(handler: TypedHandler[PayloadT]) -> TypedHandler[PayloadT]:
            registration = _Registration(payloads, handler)
            if not any(registration.takes(definition) for definition in REGISTRY):
                names = ", ".join(p.__name__ for p in payloads)
                raise ValueError(f"{handler.__name__}: no registered event is a {names}")
            self._registrations.append(registration)
            return handler

        return register

    def consumer_group(self, name: str, *, streams: Sequence[Stream] = ()) -> ConsumerGroup:
        """The group that feeds every registered event (of `streams`, if given) to its
        handlers, in registration order."""
        routes: dict[tuple[str, int], tuple[Handler, ...]] = {}
        for definition in REGISTRY:
            if streams and definition.stream not in streams:
                continue
            chain = tuple(r.handler for r in self._registrations if r.takes(definition))
            if chain:
                routes[(definition.type, definition.version)] = chain
        if not routes:
            raise ValueError(f"consumer group {name!r} has no handlers")
        streams = sorted({REGISTRY.get(t, v).stream for t, v in routes})
        return ConsumerGroup(name=name, streams=streams, routes=routes)
