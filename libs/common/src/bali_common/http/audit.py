"""Append-only audit trail (NIST AU-3): who, when (UTC), what, where, source, outcome, trace."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Required, TypedDict, Unpack

from opentelemetry import trace
from sqlalchemy import DDL, Column, DateTime, Text, event, insert
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_common.auth import Principal
from bali_common.db import execute_core, table_of, utcnow


class AuditRecord(SQLModel, table=True):
    """Rows are only ever inserted: database triggers refuse UPDATE and DELETE."""

    __tablename__ = "audit_records"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(
        default_factory=utcnow,
        sa_column=Column(DateTime(timezone=True), nullable=False, default=utcnow),
    )
    actor_subject: str = Field(max_length=300)
    actor_member: str | None = Field(default=None, max_length=100)
    actor_roles: str = Field(max_length=200)
    action: str = Field(max_length=100, description="e.g. activity.update")
    resource_type: str = Field(max_length=50)
    resource_id: str | None = Field(default=None, max_length=100)
    outcome: str = Field(max_length=20, description="success | denied | failed")
    source: str | None = Field(default=None, max_length=100, description="Client address")
    trace_id: str | None = Field(default=None, max_length=32)
    details: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


_TABLE = table_of(AuditRecord)
_INSERT = insert(_TABLE)

for _operation in ("UPDATE", "DELETE"):
    event.listen(
        _TABLE,
        "after_create",
        DDL(  # type: ignore[no-untyped-call]
            f"CREATE TRIGGER audit_records_no_{_operation.lower()} BEFORE {_operation} "
            "ON audit_records BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END"
        ).execute_if(dialect="sqlite"),
    )
for _statement in (
    "CREATE OR REPLACE FUNCTION audit_records_append_only() RETURNS trigger AS $$ "
    "BEGIN RAISE EXCEPTION 'audit records are append-only'; END; $$ LANGUAGE plpgsql",
    "CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records "
    "FOR EACH ROW EXECUTE FUNCTION audit_records_append_only()",
):
    _ddl = DDL(_statement)  # type: ignore[no-untyped-call]
    event.listen(_TABLE, "after_create", _ddl.execute_if(dialect="postgresql"))


class AuditEntry(TypedDict, total=False):
    """What the caller says of one audited action; who and when come from elsewhere."""

    action: Required[str]
    resource_type: Required[str]
    resource_id: Required[str | None]
    #: success | denied | failed; success when not given.
    outcome: str
    source: str | None
    details: dict[str, Any] | None


def audit_values(principal: Principal, **entry: Unpack[AuditEntry]) -> dict[str, Any]:
    """The column values of one audit row, with the active span's trace id."""
    context = trace.get_current_span().get_span_context()
    details = entry.get("details")
    return {
        "at": utcnow(),
        "actor_subject": principal.subject[:300],
        "actor_member": (principal.member_id or "")[:100] or None,
        "actor_roles": ",".join(sorted(principal.roles)),
        "action": entry["action"],
        "resource_type": entry["resource_type"],
        "resource_id": entry["resource_id"],
        "outcome": entry.get("outcome", "success"),
        "source": entry.get("source"),
        "trace_id": f"{context.trace_id:032x}" if context.is_valid else None,
        "details": json.dumps(details, default=str) if details else None,
    }


def record_audit(
    session: AsyncSession, *, principal: Principal, **entry: Unpack[AuditEntry]
) -> AuditRecord:
    """Stage an audit row in the caller's transaction, so it commits with the change it records."""
    row = AuditRecord(**audit_values(principal, **entry))
    session.add(row)
    return row


async def write_audit(
    session: AsyncSession, *, principal: Principal, **entry: Unpack[AuditEntry]
) -> None:
    """The row `record_audit` stages, written at once in the caller's transaction with one Core
    INSERT: a hot write path builds no ORM object and leaves nothing to flush."""
    await execute_core(session, _INSERT, audit_values(principal, **entry))
