"""Refusals: the problems the service answers with, and the audit row a refused change leaves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bali_common.auth import Principal
from bali_common.http.audit import record_audit
from bali_common.problems import FieldProblem, ProblemError
from sqlmodel.ext.asyncio.session import AsyncSession


@asynccontextmanager
async def refusals_audited(
    session: AsyncSession,
    *,
    principal: Principal,
    action: str,
    resource_type: str,
    resource_id: str | None,
    source: str | None,
) -> AsyncIterator[None]:
    """Record a `ProblemError` raised inside as a denied (401/403/404) or failed attempt.

    The use case's own changes are rolled back first, so only the audit row commits.
    """
    try:
        yield
    except ProblemError as error:
        await session.rollback()
        record_audit(
            session,
            principal=principal,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            outcome="denied" if error.status in (401, 403, 404) else "failed",
            source=source,
            details={"status": error.status, "reason": error.detail or error.title},
        )
        await session.commit()
        raise


def not_found(resource: str) -> ProblemError:
    return ProblemError(404, "Not Found", f"No such {resource}.", slug="not-found")


def forbidden(detail: str, *, field: str | None = None) -> ProblemError:
    errors = [FieldProblem(field=field, message=detail, type="forbidden")] if field else None
    return ProblemError(403, "Forbidden", detail, slug="forbidden", errors=errors)


def conflict(detail: str, *, slug: str = "conflict") -> ProblemError:
    return ProblemError(409, "Conflict", detail, slug=slug)
