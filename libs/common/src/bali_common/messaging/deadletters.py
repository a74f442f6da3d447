"""Dead letters: events a consumer group gave up on, kept to be listed and replayed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Column, DateTime, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_common.db import utcnow
from bali_common.events.envelope import CE_PREFIX, decode_headers
from bali_common.events.topics import DEAD_LETTER_TOPIC, STREAM_TOPICS
from bali_common.messaging.outbox import stage_record

#: Headers added to a dead-lettered record, beside its original headers.
DLT_HEADER_PREFIX = "dlt-"


class DeadLetter(SQLModel, table=True):
    """One poison record per (group, topic, partition, offset): a redelivery adds nothing."""

    __tablename__ = "dead_letters"
    __table_args__ = (
        UniqueConstraint("consumer_group", "topic", "partition", "offset", name="uq_dead_letter"),
    )

    id: int | None = Field(default=None, primary_key=True)
    consumer_group: str = Field(max_length=200)
    topic: str = Field(max_length=200, description="Catalogue name, without the prefix")
    partition: int
    offset: int
    key: str | None = Field(default=None, max_length=200)
    event_id: str | None = Field(default=None, max_length=64)
    event_type: str | None = Field(default=None, max_length=100)
    headers: str = Field(sa_column=Column(Text, nullable=False))
    value: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    error: str = Field(sa_column=Column(Text, nullable=False))
    attempts: int
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    replayed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class DeadLetterPublic(SQLModel):
    id: int
    consumer_group: str
    topic: str
    partition: int
    offset: int
    key: str | None
    event_id: str | None
    event_type: str | None
    error: str
    attempts: int
    created_at: datetime
    replayed_at: datetime | None


async def already_dead_lettered(
    session: AsyncSession, *, group: str, topic: str, partition: int, offset: int
) -> bool:
    found = await session.exec(
        select(DeadLetter.id).where(
            DeadLetter.consumer_group == group,
            DeadLetter.topic == topic,
            DeadLetter.partition == partition,
            DeadLetter.offset == offset,
        )
    )
    return found.first() is not None


def record_dead_letter(
    session: AsyncSession,
    *,
    group: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    headers: Sequence[tuple[str, bytes]],
    value: bytes | None,
    error: str,
    attempts: int,
) -> DeadLetter:
    """Keep the record and stage it for the dead-letter topic with the error in headers."""
    try:
        attributes = decode_headers(headers)
    except ValueError:
        attributes = {}
    key_text = key.decode(errors="replace") if key is not None else None
    letter = DeadLetter(
        consumer_group=group,
        topic=topic,
        partition=partition,
        offset=offset,
        key=key_text,
        event_id=attributes.get(f"{CE_PREFIX}id"),
        event_type=attributes.get(f"{CE_PREFIX}type"),
        headers=json.dumps([[name, raw.decode(errors="replace")] for name, raw in headers]),
        value=value,
        error=error[:4000],
        attempts=attempts,
    )
    session.add(letter)
    dlt_headers = [
        *[(name, raw) for name, raw in headers if not name.startswith(DLT_HEADER_PREFIX)],
        (f"{DLT_HEADER_PREFIX}group", group.encode()),
        (f"{DLT_HEADER_PREFIX}original-topic", topic.encode()),
        (f"{DLT_HEADER_PREFIX}original-partition", str(partition).encode()),
        (f"{DLT_HEADER_PREFIX}original-offset", str(offset).encode()),
        (f"{DLT_HEADER_PREFIX}attempts", str(attempts).encode()),
        (f"{DLT_HEADER_PREFIX}error", error[:2000].encode()),
    ]
    stage_record(
        session,
        topic=DEAD_LETTER_TOPIC,
        event_id=f"dlt:{group}:{topic}:{partition}:{offset}",
        key=key_text or "",
        event_type=letter.event_type or "unknown",
        headers=dlt_headers,
        value=value or b"",
        traceparent=None,
    )
    return letter


async def list_dead_letters(
    *, session: AsyncSession, after_id: int = 0, limit: int = 50, include_replayed: bool = False
) -> list[DeadLetter]:
    query = select(DeadLetter).where(DeadLetter.id > after_id)  # type: ignore[operator]
    if not include_replayed:
        query = query.where(DeadLetter.replayed_at.is_(None))  # type: ignore[union-attr]
    rows = await session.exec(query.order_by(DeadLetter.id).limit(limit))  # type: ignore[arg-type]
    return list(rows.all())


class DeadLetterNotReplayable(Exception):
    pass


async def replay_dead_letter(*, session: AsyncSession, letter_id: int) -> DeadLetter | None:
    """Publish the original record again to its own topic, through the outbox.

    Groups that applied it already skip it (their inbox has the id); the group
    that dead-lettered it applies it now that the cause is fixed.
    """
    letter = await session.get(DeadLetter, letter_id)
    if letter is None:
        return None
    if letter.replayed_at is not None:
        raise DeadLetterNotReplayable("already replayed")
    spec = next((s for s in STREAM_TOPICS.values() if s.name == letter.topic), None)
    if spec is None:
        raise DeadLetterNotReplayable(f"topic {letter.topic!r} is not in the catalogue")
    headers: list[tuple[str, bytes]] = [
        (name, text.encode()) for name, text in json.loads(letter.headers)
    ]
    stage_record(
        session,
        topic=spec,
        event_id=f"replay:{letter.id}:{utcnow().isoformat()}",
        key=letter.key or "",
        event_type=letter.event_type or "unknown",
        headers=headers,
        value=letter.value or b"",
        traceparent=None,
    )
    letter.replayed_at = utcnow()
    session.add(letter)
    return letter
