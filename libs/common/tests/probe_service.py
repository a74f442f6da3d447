"""A minimal service built on the real plumbing, used to prove the backbone end to end."""

from __future__ import annotations

from dataclasses import dataclass, field

from bali_common.deps import SessionDep
from bali_common.events import CloudEvent, EventPayload, Stream, event_type
from bali_common.messaging.handlers import EventHandlers
from bali_common.messaging.outbox import stage_event
from bali_common.runtime import ServiceDefinition, build_app
from bali_common.settings import CommonSettings
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel
from sqlmodel import Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession


@event_type("probe.recorded", stream=Stream.activities)
class ProbeRecorded(EventPayload):
    """A probe written through the API (test-only event type)."""

    probe_id: str
    poison: bool = False


class ProbeWritten(SQLModel, table=True):
    __tablename__ = "probe_written"
    probe_id: str = Field(primary_key=True)


class ProbeApplied(SQLModel, table=True):
    """How many times the consumer applied each probe: exactly once is the claim under test."""

    __tablename__ = "probe_applied"
    probe_id: str = Field(primary_key=True)
    times: int = 0


class ProbeNoted(SQLModel, table=True):
    """Written by the second handler of each probe event, in the same transaction."""

    __tablename__ = "probe_noted"
    probe_id: str = Field(primary_key=True)


class ProbeIn(BaseModel):
    probe_id: str
    fail_after_staging: bool = False


class ProbeCrash(Exception):
    pass


@dataclass
class ProbeFaults:
    """Handler behaviour the tests switch on."""

    poison_ids: set[str] = field(default_factory=set)


def create_probe_app(settings: CommonSettings, faults: ProbeFaults | None = None) -> FastAPI:
    faults = faults or ProbeFaults()
    router = APIRouter(prefix="/v1/probes")

    @router.post("", status_code=201)
    async def write_probe(body: ProbeIn, session: SessionDep) -> dict[str, str]:
        session.add(ProbeWritten(probe_id=body.probe_id))
        stage_event(session, ProbeRecorded(probe_id=body.probe_id), subject=body.probe_id)
        if body.fail_after_staging:
            await session.rollback()
            raise ProbeCrash("rolled back on purpose")
        await session.commit()
        return {"probe_id": body.probe_id}

    handlers = EventHandlers()

    @handlers.on(ProbeRecorded)
    async def apply_probe(
        session: AsyncSession, _event: CloudEvent, payload: ProbeRecorded
    ) -> None:
        row = await session.get(ProbeApplied, payload.probe_id)
        row = row or ProbeApplied(probe_id=payload.probe_id)
        row.times += 1
        session.add(row)

    @handlers.on(EventPayload)
    async def note_probe(session: AsyncSession, _event: CloudEvent, payload: EventPayload) -> None:
        """A second handler of the same event: a crash here must undo the first one's effect."""
        assert isinstance(payload, ProbeRecorded)
        if payload.poison or payload.probe_id in faults.poison_ids:
            raise ProbeCrash(f"handler cannot apply {payload.probe_id}")
        session.add(ProbeNoted(probe_id=payload.probe_id))

    return build_app(
        ServiceDefinition(
            name=settings.service_name,
            title="Probe",
            description="Backbone probe",
            models=[ProbeWritten, ProbeApplied, ProbeNoted],
            routers=[router],
            publishes=[Stream.activities],
            consumer_groups=[handlers.consumer_group("probe.applier")],
        ),
        settings,
    )


async def noted_ids(app: FastAPI) -> set[str]:
    async with app.state.runtime.sessions() as session:
        return set((await session.exec(select(ProbeNoted.probe_id))).all())


async def applied_counts(app: FastAPI) -> dict[str, int]:
    async with app.state.runtime.sessions() as session:
        rows = await session.exec(select(ProbeApplied))
        return {row.probe_id: row.times for row in rows}
