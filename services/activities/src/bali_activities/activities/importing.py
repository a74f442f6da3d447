"""Bulk import: a sheet's rows applied as creates and updates, all or nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bali_common.auth import Principal
from bali_common.db import utcnow
from bali_common.http.audit import record_audit
from bali_common.problems import FieldProblem, ProblemError, field_error
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_activities.activities import access, steps
from bali_activities.activities.schemas import ImportReport, ImportRow, ImportRowResult
from bali_activities.members.queries import sees_every_member
from bali_activities.refusals import forbidden, refusals_audited


async def import_activities(
    *,
    session: AsyncSession,
    rows: Sequence[ImportRow],
    file_format: str,
    dry_run: bool,
    principal: Principal,
    source: str | None,
    now: datetime | None = None,
) -> ImportReport:
    """Create or update an activity per row, all or nothing.

    Every row is applied inside one transaction exactly as a real import would
    apply it; a dry run, or a file with any row error, is then rolled back, so
    the report is what the real import does and a refused file changes nothing.
    """
    moment = now or utcnow()
    async with refusals_audited(
        session,
        principal=principal,
        action="activity.import",
        resource_type="activity",
        resource_id=None,
        source=source,
    ):
        results: list[ImportRowResult] = []
        first_row_of: dict[str, int] = {}
        for row in rows:
            results.append(
                await _import_row(
                    session,
                    row,
                    first_row_of=first_row_of,
                    dry_run=dry_run,
                    principal=principal,
                    source=source,
                    now=moment,
                )
            )
        failed = [result for result in results if result.action == "error"]
        if dry_run or failed:
            await session.rollback()
        if failed and not dry_run:
            raise ProblemError(
                422,
                "Import refused",
                f"{len(failed)} of {len(rows)} rows have errors; nothing was imported. "
                "A dry run reports every row.",
                slug="import-refused",
                errors=[problem for result in failed for problem in result.errors],
            )
        report = ImportReport(
            dry_run=dry_run,
            applied=not dry_run,
            format="xlsx" if file_format == "xlsx" else "csv",
            rows=len(rows),
            created=sum(1 for r in results if r.action == "create"),
            updated=sum(1 for r in results if r.action == "update"),
            unchanged=sum(1 for r in results if r.action == "unchanged"),
            failed=len(failed),
            results=results,
        )
        record_audit(
            session,
            principal=principal,
            action="activity.import.dry_run" if dry_run else "activity.import",
            resource_type="activity",
            resource_id=None,
            source=source,
            details=report.model_dump(include={"rows", "created", "updated", "unchanged"}),
        )
        await session.commit()
    return report


async def _import_row(
    session: AsyncSession,
    row: ImportRow,
    *,
    first_row_of: dict[str, int],
    dry_run: bool,
    principal: Principal,
    source: str | None,
    now: datetime,
) -> ImportRowResult:
    prefix = f"rows.{row.row}"
    if row.problems:
        return ImportRowResult(row=row.row, action="error", errors=list(row.problems))
    try:
        if row.activity_id is None:
            created = await steps.create(
                session, row.values, prefix=prefix, principal=principal, source=source, now=now
            )
            return ImportRowResult(
                row=row.row, action="create", activity_id=None if dry_run else created.id
            )
        if row.activity_id in first_row_of:
            raise field_error(
                f"{prefix}.id", f"the same activity as row {first_row_of[row.activity_id]}"
            )
        first_row_of[row.activity_id] = row.row
        found = await access.locked(session, row.activity_id)
        staff = found is not None and found.deleted and await sees_every_member(session, principal)
        if found is None or not access.may_read(principal, found, staff=staff):
            raise field_error(f"{prefix}.id", "no such activity")
        activity = found
        if not access.may_write(principal, activity):
            raise forbidden("Only the lead member may change this activity.", field=f"{prefix}.id")
        if activity.deleted:
            raise field_error(f"{prefix}.id", "the activity is deleted; restore it first")
        if row.version is not None and row.version != activity.version:
            raise field_error(
                f"{prefix}.version", f"stale: the activity is now at version {activity.version}"
            )
        changed = await steps.change(
            session,
            activity,
            row.values,
            prefix=prefix,
            principal=principal,
            source=source,
            now=now,
        )
    except ProblemError as error:
        problems = error.errors or [
            FieldProblem(field=prefix, message=error.detail or error.title, type="value_error")
        ]
        return ImportRowResult(row=row.row, action="error", errors=problems)
    return ImportRowResult(
        row=row.row,
        action="update" if changed else "unchanged",
        activity_id=activity.id,
        changed_fields=changed,
    )
