"""HTTP routes of the activity log: thin adapters that parse, authorise and call the use cases."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Annotated, Any, Literal

import anyio.to_thread
from bali_common.events.activities import ActivityStatus, ActivityType
from bali_common.http.concurrency import IfMatchHeader, etag_of, set_etag
from bali_common.http.idempotency import IdempotentWriteDep, WriteOutcome
from bali_common.http.pagination import PageRequestDep
from bali_common.problems import field_error, problem_responses
from bali_common.tabular import CSV_MEDIA_TYPE, XLSX_MEDIA_TYPE
from fastapi import APIRouter, Depends, File, Path, Query, Response, UploadFile
from fastapi.responses import JSONResponse
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_activities.activities import editing, importing, queries, tabular
from bali_activities.activities.models import MAX_AREA, MAX_ITEM, MAX_TAG
from bali_activities.activities.schemas import (
    ActivitiesPublic,
    ActivityCreate,
    ActivityFilters,
    ActivityHistoryPublic,
    ActivityPublic,
    ActivityUpdate,
    ImportReport,
)
from bali_activities.deps import Reader, SessionDep, SettingsDep, SourceDep, Writer

router = APIRouter(prefix="/v1/activities", tags=["activities"])

ActivityIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        description="Activity id",
        examples=["0b6f3f8e-2f7c-4a38-9a43-6c1f1f1f9a01"],
    ),
]


#: Member ids as the directory spells them, in any letter case.
_MEMBER_QUERY_PATTERN = r"^[A-Za-z][A-Za-z0-9-]{1,19}$"


async def activity_filters(
    item: Annotated[
        int | None, Query(ge=1, le=MAX_ITEM, description="Strategy item number", examples=[12])
    ] = None,
    area: Annotated[
        int | None, Query(ge=1, le=MAX_AREA, description="Strategy area number", examples=[4])
    ] = None,
    member: Annotated[
        str | None,
        Query(
            pattern=_MEMBER_QUERY_PATTERN,
            description="Member leading or taking part in any role",
            examples=["TH"],
        ),
    ] = None,
    lead_member: Annotated[
        str | None,
        Query(pattern=_MEMBER_QUERY_PATTERN, description="Member leading", examples=["ID"]),
    ] = None,
    status: Annotated[ActivityStatus | None, Query(examples=["ongoing"])] = None,
    activity_type: Annotated[
        ActivityType | None, Query(alias="type", examples=["training"])
    ] = None,
    date_from: Annotated[
        date | None,
        Query(
            description="Activities still running on or after this day (actual dates, else "
            "planned)",
            examples=["2025-01-01"],
        ),
    ] = None,
    date_to: Annotated[
        date | None,
        Query(description="Activities starting on or before this day", examples=["2025-12-31"]),
    ] = None,
    tag: Annotated[
        str | None, Query(min_length=1, max_length=MAX_TAG, examples=["online scam operations"])
    ] = None,
    country: Annotated[
        str | None,
        Query(pattern=r"^[A-Za-z]{2}$", description="ISO 3166-1 alpha-2", examples=["KH"]),
    ] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="Text in the title, description or tags (case-insensitive)",
            examples=["biometrics"],
        ),
    ] = None,
    include_deleted: Annotated[
        bool,
        Query(
            description="Also soft-deleted activities (only those the caller may see: its own, "
            "or all for co-chairs, operations and admins)",
            examples=[False],
        ),
    ] = False,
) -> ActivityFilters:
    if date_from is not None and date_to is not None and date_to < date_from:
        raise field_error("query.date_to", "must not be before date_from")
    return ActivityFilters(
        item=item,
        area=area,
        member=member.upper() if member else None,
        lead_member=lead_member.upper() if lead_member else None,
        status=status,
        type=activity_type,
        date_from=date_from,
        date_to=date_to,
        tag=" ".join(tag.split()).lower() if tag else None,
        country=country.upper() if country else None,
        q=(q.strip() or None) if q else None,
        include_deleted=include_deleted,
    )


FiltersDep = Annotated[ActivityFilters, Depends(activity_filters)]


def _activity_response(activity: ActivityPublic, status: int = 200) -> JSONResponse:
    return JSONResponse(
        activity.model_dump(mode="json"),
        status_code=status,
        headers={"ETag": etag_of(activity.version)},
    )


@router.post(
    "",
    status_code=201,
    response_model=ActivityPublic,
    responses=problem_responses(401, 403, 409, 413, 422),
    summary="Log an activity",
    description="The caller's member agency leads it (admins name `lead_member`). Honours "
    "`Idempotency-Key`: the same key and body replay the first response, the same key with "
    "another body is refused (422). Publishes `activity.created`.",
)
async def create_activity(
    body: ActivityCreate, principal: Writer, source: SourceDep, write: IdempotentWriteDep
) -> JSONResponse:
    async def create(session: AsyncSession) -> WriteOutcome:
        activity = await editing.create_activity(
            session=session, activity_in=body, principal=principal, source=source
        )
        return WriteOutcome.versioned(
            activity,
            version=activity.version,
            status=201,
            location=f"/v1/activities/{activity.id}",
        )

    return await write.run(principal=principal, request_body=body, operation=create)


@router.get(
    "",
    response_model=ActivitiesPublic,
    responses=problem_responses(401, 403, 422),
    summary="List activities",
    description="Newest first, cursor-paginated (`page_size` at most 200). Every filter given "
    "must match.",
)
async def list_activities(
    session: SessionDep, principal: Reader, filters: FiltersDep, page: PageRequestDep
) -> ActivitiesPublic:
    return await queries.list_activities(
        session=session, filters=filters, page=page, principal=principal
    )


_EXPORT_CONTENT: dict[str, Any] = {
    "text/csv": {
        "schema": {"type": "string"},
        "example": ",".join(tabular.COLUMNS) + "\r\n",
    },
    XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
}


@router.get(
    "/export",
    response_class=Response,
    responses={
        200: {"description": "The activities as a spreadsheet", "content": _EXPORT_CONTENT},
        **problem_responses(401, 403, 422),
    },
    summary="Export activities as CSV or XLSX",
    description="The same filters as the list; all matching activities (up to a limit, "
    "beyond which the export is refused with 422). The columns are those the import reads.",
)
async def export_activities(
    session: SessionDep,
    settings: SettingsDep,
    principal: Reader,
    filters: FiltersDep,
    file_format: Annotated[
        Literal["csv", "xlsx"], Query(alias="format", examples=["xlsx"])
    ] = "csv",
) -> Response:
    activities = await queries.export_activities(
        session=session, filters=filters, principal=principal, max_rows=settings.export_max_rows
    )
    if file_format == "xlsx":
        content = await anyio.to_thread.run_sync(tabular.export_xlsx, activities)
        media_type = XLSX_MEDIA_TYPE
    else:
        content = tabular.export_csv(activities)
        media_type = CSV_MEDIA_TYPE
    return Response(
        content,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="activities.{file_format}"'},
    )


@router.post(
    "/import",
    response_model=ImportReport,
    responses=problem_responses(401, 403, 409, 413, 422),
    summary="Import activities from CSV or XLSX",
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "example": {
                        "file": "title,items,type,status,participants,planned_start,planned_end\r\n"
                        "Border officials' biometrics training,15;16,training,planned,"
                        "IOM:participant,2026-03-02,2026-03-06\r\n"
                    }
                }
            }
        }
    },
    description="Upload a sheet with the export's columns (multipart field `file`). A row with "
    "an `id` updates that activity (if `version` is given it must be current; blank cells clear "
    "optional fields, columns left out stay as they are); a row without creates one. All or "
    "nothing: with `dry_run=true`, or if any row has an error, nothing changes; a dry run "
    "reports what each row would do and every row error, a real import with errors is refused "
    "(422) naming `rows.<row>.<field>`. Honours `Idempotency-Key`.",
)
async def import_activities(
    write: IdempotentWriteDep,
    settings: SettingsDep,
    principal: Writer,
    source: SourceDep,
    file: Annotated[UploadFile, File(description="The CSV or XLSX sheet")],
    dry_run: Annotated[
        bool, Query(description="Report what would happen, change nothing", examples=[True])
    ] = False,
) -> JSONResponse:
    data = await file.read()
    file_format = tabular.detect_format(file.filename, file.content_type, data)
    rows = await anyio.to_thread.run_sync(
        lambda: tabular.parse_upload(
            data,
            file_format=file_format,
            max_rows=settings.import_max_rows,
            max_unpacked=settings.import_max_unpacked_bytes,
        )
    )

    async def operation(session: AsyncSession) -> WriteOutcome:
        report = await importing.import_activities(
            session=session,
            rows=rows,
            file_format=file_format,
            dry_run=dry_run,
            principal=principal,
            source=source,
        )
        return WriteOutcome(status=200, body=report)

    return await write.run(
        principal=principal,
        request_body={"sha256": hashlib.sha256(data).hexdigest(), "dry_run": dry_run},
        operation=operation,
    )


@router.get(
    "/{activity_id}",
    response_model=ActivityPublic,
    responses=problem_responses(401, 403, 404, 422),
    summary="Read one activity",
    description="The `ETag` header carries the version to send back in `If-Match`.",
)
async def get_activity(
    activity_id: ActivityIdPath, session: SessionDep, principal: Reader, response: Response
) -> ActivityPublic:
    activity = await queries.get_activity(
        session=session, activity_id=activity_id, principal=principal
    )
    set_etag(response, activity.version)
    return activity


@router.patch(
    "/{activity_id}",
    response_model=ActivityPublic,
    responses=problem_responses(401, 403, 404, 409, 412, 422, 428),
    summary="Change an activity",
    description="Only the fields sent change. Needs `If-Match` (428 without it, 412 if stale). "
    "Publishes `activity.status_changed` when the status changes and `activity.updated` when "
    "other fields change; nothing when nothing changes.",
)
async def update_activity(
    activity_id: ActivityIdPath,
    body: ActivityUpdate,
    session: SessionDep,
    principal: Writer,
    source: SourceDep,
    if_match: IfMatchHeader = None,
) -> JSONResponse:
    activity = await editing.update_activity(
        session=session,
        activity_id=activity_id,
        changes=body,
        if_match=if_match,
        principal=principal,
        source=source,
    )
    return _activity_response(activity)


def _deletion_route(*, deleted: bool) -> Callable[..., Awaitable[JSONResponse]]:
    """Delete and restore are one use case, `editing.set_deleted`, in opposite directions."""

    async def set_deleted(
        activity_id: ActivityIdPath,
        session: SessionDep,
        principal: Writer,
        source: SourceDep,
        if_match: IfMatchHeader = None,
    ) -> JSONResponse:
        activity = await editing.set_deleted(
            session=session,
            activity_id=activity_id,
            deleted=deleted,
            if_match=if_match,
            principal=principal,
            source=source,
        )
        return _activity_response(activity)

    return set_deleted


delete_activity = router.delete(
    "/{activity_id}",
    name="delete_activity",
    response_model=ActivityPublic,
    responses=problem_responses(401, 403, 404, 409, 412, 422),
    summary="Soft-delete an activity",
    description="The activity leaves lists and exports but keeps its history; restore brings it "
    "back. `If-Match` is optional (checked when sent). A second delete is refused with 409. "
    "Publishes `activity.deleted`.",
)(_deletion_route(deleted=True))

restore_activity = router.post(
    "/{activity_id}/restore",
    name="restore_activity",
    response_model=ActivityPublic,
    responses=problem_responses(401, 403, 404, 409, 412, 422),
    summary="Restore a soft-deleted activity",
    description="`If-Match` is optional (checked when sent). Restoring an activity that is not "
    "deleted is refused with 409. Publishes `activity.restored`.",
)(_deletion_route(deleted=False))


@router.get(
    "/{activity_id}/history",
    response_model=ActivityHistoryPublic,
    responses=problem_responses(401, 403, 404, 422),
    summary="Every version of an activity",
    description="Oldest first: who changed what, when, in which trace, with each version's "
    "full snapshot.",
)
async def activity_history(
    activity_id: ActivityIdPath, session: SessionDep, principal: Reader, page: PageRequestDep
) -> ActivityHistoryPublic:
    return await queries.activity_history(
        session=session, activity_id=activity_id, principal=principal, page=page
    )
