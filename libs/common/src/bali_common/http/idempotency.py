"""Idempotency-Key on POST (IETF httpapi-idempotency-key-header draft; Stripe; AIP-155).

Same key and same body: the first response is replayed and nothing is done
twice. Same key, other body: 422. Same key while the first is still running:
409. Keys are scoped to the caller, so another tenant's key never matches.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Column, DateTime, Text, delete, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_common.auth import Principal
from bali_common.db import SessionFactory, as_utc, table_of, transaction, utcnow
from bali_common.deps import RuntimeDep
from bali_common.http.concurrency import etag_of
from bali_common.problems import ProblemError

#: A key whose first request died mid-way may be reused after this long.
IN_FLIGHT_TIMEOUT = timedelta(minutes=2)
RETENTION = timedelta(hours=24)

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Unique per intended operation; a retry with the same key and body "
        "replays the first response",
        examples=["3f1c2a9e-6d7b-4c55-9a0e-2b7f8d1e4c21"],
    ),
]


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_records"

    scope: str = Field(primary_key=True, max_length=300, description="Caller identity")
    key: str = Field(primary_key=True, max_length=255)
    fingerprint: str = Field(max_length=64, description="SHA-256 of method, path and body")
    status_code: int | None = None
    response_body: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    response_headers: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_column=Column(DateTime(timezone=True), nullable=False, default=utcnow),
    )


_TABLE = table_of(IdempotencyRecord)


def fingerprint_of(method: str, path: str, body: Any) -> str:
    canonical = json.dumps([method, path, body], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def scope_of(principal: Principal) -> str:
    return f"{principal.member_id or '-'}|{principal.subject}"


Operation = Callable[[], Awaitable[tuple[int, Any, dict[str, str]]]]


async def run_idempotent(
    *,
    sessions: SessionFactory,
    principal: Principal,
    key: str | None,
    fingerprint: str,
    operation: Operation,
) -> JSONResponse:
    """Run `operation` once per (caller, key); it returns (status, JSON body, headers)."""
    if key is None:
        status, body, headers = await operation()
        return JSONResponse(body, status_code=status, headers=headers)
    scope = scope_of(principal)
    replay = await _claim(sessions, scope=scope, key=key, fingerprint=fingerprint)
    if replay is not None:
        return replay
    try:
        status, body, headers = await operation()
    except BaseException:
        await _release(sessions, scope=scope, key=key)
        raise
    if status >= 500:
        await _release(sessions, scope=scope, key=key)
    else:
        await _complete(sessions, scope=scope, key=key, status=status, body=body, headers=headers)
    return JSONResponse(body, status_code=status, headers={**headers, "Idempotency-Key": key})


async def _claim(
    sessions: SessionFactory, *, scope: str, key: str, fingerprint: str
) -> JSONResponse | None:
    try:
        async with transaction(sessions) as session:
            existing = await session.get(IdempotencyRecord, (scope, key), with_for_update=True)
            if existing is not None and _expired(existing):
                await session.exec(delete(_TABLE).where(*_this_key(scope, key)))
                existing = None
            if existing is None:
                # Core INSERT: written at once (a concurrent claim fails here), no ORM object.
                await session.exec(
                    insert(_TABLE).values(
                        scope=scope, key=key, fingerprint=fingerprint, created_at=utcnow()
                    )
                )
                return None
    except IntegrityError:
        async with sessions() as session:
            existing = await session.get(IdempotencyRecord, (scope, key))
        if existing is None:
            raise _in_flight() from None
    if existing.fingerprint != fingerprint:
        raise ProblemError(
            422,
            "Idempotency-Key reused",
            "This Idempotency-Key was used with a different request; use a new key.",
            slug="idempotency-key-reused",
        )
    if existing.status_code is None:
        raise _in_flight()
    headers = json.loads(existing.response_headers or "{}")
    return JSONResponse(
        json.loads(existing.response_body or "null"),
        status_code=existing.status_code,
        headers={**headers, "Idempotency-Key": key, "Idempotent-Replayed": "true"},
    )


def _expired(record: IdempotencyRecord) -> bool:
    age = utcnow() - as_utc(record.created_at)
    return age > RETENTION or (record.status_code is None and age > IN_FLIGHT_TIMEOUT)


def _in_flight() -> ProblemError:
    return ProblemError(
        409,
        "Request in progress",
        "A request with this Idempotency-Key is still being processed; retry shortly.",
        slug="idempotency-key-in-flight",
        headers={"Retry-After": "1"},
    )


async def _complete(
    sessions: SessionFactory,
    *,
    scope: str,
    key: str,
    status: int,
    body: Any,
    headers: dict[str, str],
) -> None:
    async with transaction(sessions) as session:
        # A record released meanwhile (it expired and was claimed again) updates no row.
        await session.exec(
            update(_TABLE)
            .where(*_this_key(scope, key))
            .values(
                status_code=status,
                response_body=json.dumps(body, default=str),
                response_headers=json.dumps(headers),
            )
        )


async def _release(sessions: SessionFactory, *, scope: str, key: str) -> None:
    async with transaction(sessions) as session:
        await session.exec(delete(_TABLE).where(*_this_key(scope, key)))


def _this_key(scope: str, key: str) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return _TABLE.c.scope == scope, _TABLE.c.key == key


@dataclass(frozen=True)
class WriteOutcome:
    """What a write answers: its status, body and headers (replayed as-is for a repeated key)."""

    status: int
    body: BaseModel
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def versioned(
        cls, body: BaseModel, *, version: int, status: int = 200, location: str | None = None
    ) -> WriteOutcome:
        """A resource answered with the ETag of its version (and where it lives, if created)."""
        headers = {"ETag": etag_of(version)}
        if location is not None:
            headers["Location"] = location
        return cls(status=status, body=body, headers=headers)


@dataclass(frozen=True)
class IdempotentWrite:
    """What every POST honouring `Idempotency-Key` shares: the caller's key, a fresh session
    for the use case, and the replay of the first answer for a retried request."""

    request: Request
    sessions: SessionFactory
    key: str | None

    async def run(
        self,
        *,
        principal: Principal,
        request_body: BaseModel | Mapping[str, Any] | None,
        operation: Callable[[AsyncSession], Awaitable[WriteOutcome]],
    ) -> JSONResponse:
        """Run `operation` in its own session once per (caller, key).

        `request_body` is what makes two requests "the same" for a key, with the method and
        path; it is only fingerprinted when a key was sent.
        """

        async def respond() -> tuple[int, Any, dict[str, str]]:
            async with self.sessions() as session:
                outcome = await operation(session)
            return outcome.status, outcome.body.model_dump(mode="json"), dict(outcome.headers)

        fingerprint = ""
        if self.key is not None:
            body = (
                request_body.model_dump(mode="json")
                if isinstance(request_body, BaseModel)
                else request_body
            )
            fingerprint = fingerprint_of(self.request.method, self.request.url.path, body)
        return await run_idempotent(
            sessions=self.sessions,
            principal=principal,
            key=self.key,
            fingerprint=fingerprint,
            operation=respond,
        )


async def idempotent_write(
    request: Request, runtime: RuntimeDep, key: IdempotencyKeyHeader = None
) -> IdempotentWrite:
    return IdempotentWrite(request=request, sessions=runtime.sessions, key=key)


IdempotentWriteDep = Annotated[IdempotentWrite, Depends(idempotent_write)]
