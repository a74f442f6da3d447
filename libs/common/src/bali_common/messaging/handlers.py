"""Event handlers of a service, registered by the payload classes they take.

A service declares `handlers = EventHandlers()` and decorates each handler with
`@handlers.on(MemberRegistered, MemberUpdated)` (one event at a time) or
`@handlers.on_batch(ActivityEvent)` (every such event of a fetched batch at once, so that a
projection writes one statement per table per batch). One event may feed several handlers:
the consumer runner applies a fetched batch (every partition's records of one fetch) in one
transaction, running the handlers in registration order, each over the batch's events it takes
in offset order within each partition, so an event is applied by all of its handlers or by
none. A batch may hold several aggregates, partitions and topics: a batch handler must not
assume one.
`handlers.consumer_group("reporting.projections")` is what the runtime starts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession

from bali_common.events.envelope import CloudEvent
from bali_common.events.registry import REGISTRY, EventDefinition, EventPayload
from bali_common.events.topics import Stream

PayloadT = TypeVar("PayloadT", bound=EventPayload)

#: Applies one event inside the runner's transaction; it must not commit.
Handler = Callable[[AsyncSession, CloudEvent, Any], Awaitable[None]]
TypedHandler = Callable[[AsyncSession, CloudEvent, PayloadT], Awaitable[None]]
#: Applies several events, in offset order, inside the runner's transaction.
BatchHandler = Callable[[AsyncSession, Sequence[tuple[CloudEvent, Any]]], Awaitable[None]]
TypedBatchHandler = Callable[[AsyncSession, Sequence[tuple[CloudEvent, PayloadT]]], Awaitable[None]]


@dataclass(frozen=True)
class Registration:
    """A registered handler, the payload classes it takes, and how to apply a batch's events
    to it (all at once for a batch handler, one after the other otherwise)."""

    payloads: tuple[type[EventPayload], ...]
    handler: Handler | BatchHandler
    apply: BatchHandler

    def takes(self, definition: EventDefinition) -> bool:
        return issubclass(definition.model, self.payloads)

    @property
    def name(self) -> str:
        return getattr(self.handler, "__name__", repr(self.handler))


def _one_at_a_time(handler: Handler) -> BatchHandler:
    async def apply(session: AsyncSession, events: Sequence[tuple[CloudEvent, Any]]) -> None:
        for event, payload in events:
            await handler(session, event, payload)

    return apply


@dataclass(frozen=True)
class ConsumerGroup:
    """One Kafka consumer group of a service: its topics, its handlers in registration
    order, and per event type and version which of them take it. The composition root
    lists these."""

    name: str
    streams: Sequence[Stream]
    registrations: Sequence[Registration]
    #: (type, version) -> indices into `registrations`, ascending.
    routes: Mapping[tuple[str, int], tuple[int, ...]]

    def handles_type(self, event_type: str) -> bool:
        return event_type in self._types

    @cached_property
    def _types(self) -> frozenset[str]:
        """Asked of every fetched record: a set, not a scan of the routes."""
        return frozenset(routed_type for routed_type, _ in self.routes)

    def route_of(self, event_type: str, version: int) -> tuple[int, ...]:
        """The registrations that take this type and version; empty for none."""
        return self.routes.get((event_type, version), ())

    def handlers_for(self, event_type: str, version: int) -> Sequence[Handler | BatchHandler]:
        return tuple(self.registrations[i].handler for i in self.route_of(event_type, version))


class EventHandlers:
    """The handlers of one consumer group, typed on the payload classes they take.

    A class matches every registered event whose model is that class or a subclass,
    so `@handlers.on(AlertEvent)` takes every alert event and
    `@handlers.on(EventPayload)` every event of every stream.
    """

    def __init__(self) -> None:
        self._registrations: list[Registration] = []

    def on(
        self, *payloads: type[PayloadT]
    ) -> Callable[[TypedHandler[PayloadT]], TypedHandler[PayloadT]]:
        taken = self._checked(payloads)

        def register(handler: TypedHandler[PayloadT]) -> TypedHandler[PayloadT]:
            self._register(Registration(taken, handler, _one_at_a_time(handler)))
            return handler

        return register

    def on_batch(
        self, *payloads: type[PayloadT]
    ) -> Callable[[TypedBatchHandler[PayloadT]], TypedBatchHandler[PayloadT]]:
        taken = self._checked(payloads)

        def register(handler: TypedBatchHandler[PayloadT]) -> TypedBatchHandler[PayloadT]:
            self._register(Registration(taken, handler, handler))
            return handler

        return register

    @staticmethod
    def _checked(payloads: tuple[type[PayloadT], ...]) -> tuple[type[EventPayload], ...]:
        if not payloads:
            raise TypeError("name at least one payload class the handler takes")
        return payloads

    def _register(self, registration: Registration) -> None:
        if not any(registration.takes(definition) for definition in REGISTRY):
            names = ", ".join(p.__name__ for p in registration.payloads)
            raise ValueError(f"{registration.name}: no registered event is a {names}")
        self._registrations.append(registration)

    def consumer_group(self, name: str, *, streams: Sequence[Stream] = ()) -> ConsumerGroup:
        """The group that feeds every registered event (of `streams`, if given) to its
        handlers, in registration order."""
        routes: dict[tuple[str, int], tuple[int, ...]] = {}
        for definition in REGISTRY:
            if streams and definition.stream not in streams:
                continue
            chain = tuple(i for i, r in enumerate(self._registrations) if r.takes(definition))
            if chain:
                routes[(definition.type, definition.version)] = chain
        if not routes:
            raise ValueError(f"consumer group {name!r} has no handlers")
        routed = sorted({REGISTRY.get(t, v).stream for t, v in routes})
        return ConsumerGroup(
            name=name,
            streams=routed,
            registrations=tuple(self._registrations),
            routes=routes,
        )
