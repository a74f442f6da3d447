"""The handler registry: which handlers each event type reaches, and in what order."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from bali_common.events import CloudEvent, EventPayload, Stream
from bali_common.events.alerts import AlertAcknowledged, AlertEvent, AlertRaised
from bali_common.events.members import MemberRegistered, MemberUpdated
from bali_common.messaging.handlers import EventHandlers
from sqlmodel.ext.asyncio.session import AsyncSession

CONTRACTS = Path(__file__).parent / "contracts"
RAISED = AlertRaised.model_validate(json.loads((CONTRACTS / "alert.raised.v1.json").read_text()))
ACKNOWLEDGED = AlertAcknowledged.model_validate(
    json.loads((CONTRACTS / "alert.acknowledged.v1.json").read_text())
)


async def first(session: AsyncSession, event: CloudEvent, payload: EventPayload) -> None:
    return None


async def second(session: AsyncSession, event: CloudEvent, payload: EventPayload) -> None:
    return None


def test_several_handlers_of_one_type_run_in_registration_order() -> None:
    handlers = EventHandlers()
    handlers.on(AlertRaised)(first)
    handlers.on(AlertEvent)(second)
    group = handlers.consumer_group("g")
    assert group.handlers_for("alert.raised", 1) == (first, second)
    assert group.handlers_for("alert.acknowledged", 1) == (second,)


def test_a_family_class_takes_every_registered_event_of_that_family() -> None:
    handlers = EventHandlers()
    handlers.on(AlertEvent)(first)
    group = handlers.consumer_group("g")
    assert group.streams == [Stream.alerts]
    assert {t for t, _ in group.routes} >= {"alert.raised", "alert.acknowledged", "alert.resolved"}
    assert not group.handles_type("member.registered")


def test_named_classes_take_only_themselves() -> None:
    handlers = EventHandlers()
    handlers.on(MemberRegistered, MemberUpdated)(first)
    handlers.on(AlertAcknowledged)(second)
    group = handlers.consumer_group("g")
    assert set(group.routes) == {
        ("member.registered", 1),
        ("member.updated", 1),
        ("alert.acknowledged", 1),
    }
    assert group.streams == sorted([Stream.members, Stream.alerts])


def test_a_group_can_be_narrowed_to_some_streams() -> None:
    handlers = EventHandlers()
    handlers.on(EventPayload)(first)
    group = handlers.consumer_group("g", streams=[Stream.members])
    assert group.streams == [Stream.members]
    assert {t for t, _ in group.routes} == {"member.registered", "member.updated"}


def test_unknown_versions_and_types_have_no_handlers() -> None:
    handlers = EventHandlers()
    handlers.on(AlertRaised)(first)
    group = handlers.consumer_group("g")
    assert group.handlers_for("alert.raised", 99) == ()
    assert group.handlers_for("alert.unheard_of", 1) == ()


def test_a_handler_for_no_registered_event_is_refused() -> None:
    class Unregistered(EventPayload):
        pass

    with pytest.raises(ValueError, match="no registered event"):
        EventHandlers().on(Unregistered)(first)
    with pytest.raises(TypeError):
        EventHandlers().on()


def test_a_group_without_handlers_is_refused() -> None:
    with pytest.raises(ValueError, match="no handlers"):
        EventHandlers().consumer_group("empty")


async def test_a_batch_handler_gets_the_events_it_takes_at_once_in_offset_order() -> None:
    handlers = EventHandlers()
    received: list[list[str]] = []

    @handlers.on_batch(AlertEvent)
    async def project(session: AsyncSession, batch: Sequence[tuple[CloudEvent, Any]]) -> None:
        received.append([event.type for event, _ in batch])

    handlers.on(MemberRegistered)(first)
    group = handlers.consumer_group("g")
    (index,) = group.route_of("alert.raised", 1)
    assert group.registrations[index].handler is project
    events = [(CloudEvent.of(p, source="/t", subject="s"), p) for p in (RAISED, ACKNOWLEDGED)]
    await group.registrations[index].apply(None, events)  # type: ignore[arg-type]
    assert received == [["alert.raised", "alert.acknowledged"]]
    assert group.route_of("member.registered", 1) == (1,)
