"""Creating under `Idempotency-Key`: 201 with ETag and Location, replayed for a retried request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from bali_common.auth import Principal
from bali_common.deps import RuntimeDep
from bali_common.http.concurrency import etag_of
from bali_common.http.idempotency import IdempotencyKeyHeader, request_fingerprint, run_idempotent
from bali_common.runtime import ServiceRuntime
from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession


class Versioned(Protocol):
    """A public representation that carries the version its ETag names."""

    version: int

    def model_dump(self, *, mode: str) -> dict[str, Any]: ...


#: A creating use case run in its own session: what it created and the path where it lives.
CreateStep = Callable[[AsyncSession], Awaitable[tuple[Versioned, str]]]


@dataclass(frozen=True)
class IdempotentCreation:
    """What a creating POST needs to honour `Idempotency-Key`."""

    runtime: ServiceRuntime
    request: Request
    key: str | None

    async def run(self, body: BaseModel, principal: Principal, create: CreateStep) -> JSONResponse:
        """Run `create` once per caller and key; a retry with the same body replays the 201."""

        async def operation() -> tuple[int, Any, dict[str, str]]:
            async with self.runtime.sessions() as session:
                created, location = await create(session)
            headers = {"ETag": etag_of(created.version), "Location": location}
            return 201, created.model_dump(mode="json"), headers

        return await run_idempotent(
            sessions=self.runtime.sessions,
            principal=principal,
            key=self.key,
            fingerprint=request_fingerprint(self.request, body),
            operation=operation,
        )


def idempotent_creation(
    request: Request, runtime: RuntimeDep, idempotency_key: IdempotencyKeyHeader = None
) -> IdempotentCreation:
    return IdempotentCreation(runtime=runtime, request=request, key=idempotency_key)


Creation = Annotated[IdempotentCreation, Depends(idempotent_creation)]
