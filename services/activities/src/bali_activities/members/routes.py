"""HTTP routes of the member directory: everyone reads it, administrators change it."""

from __future__ import annotations

from typing import Annotated

from bali_common.events.members import MemberKind
from bali_common.http.concurrency import IfMatchHeader, set_etag
from bali_common.http.idempotency import IdempotentWriteDep, WriteOutcome
from bali_common.http.pagination import PageRequestDep
from bali_common.problems import problem_responses
from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_activities.deps import Admin, Reader, SessionDep, SourceDep
from bali_activities.members import changes, queries
from bali_activities.members.models import (
    MEMBER_ID_PATTERN,
    FocalPointCreate,
    FocalPointUpdate,
    MemberCreate,
    MemberPublic,
    MembersPublic,
    MemberUpdate,
)

router = APIRouter(prefix="/v1/members", tags=["members"])

MemberIdPath = Annotated[
    str,
    Path(
        pattern=MEMBER_ID_PATTERN,
        description="Member id: ISO 3166 alpha-2 for a state, a short code for others",
        examples=["AU"],
    ),
]
FocalPointIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        description="Focal point id from the member's `focal_points`",
        examples=["au-focal-point"],
    ),
]


@router.get(
    "",
    response_model=MembersPublic,
    responses=problem_responses(401, 403, 422),
    summary="List the member directory",
    description="Members in id order, cursor-paginated. Focal points are shown to admins, "
    "operations staff, co-chairs and to each member for itself.",
)
async def list_members(
    session: SessionDep,
    principal: Reader,
    page: PageRequestDep,
    kind: Annotated[MemberKind | None, Query(examples=["member_state"])] = None,
    is_co_chair: Annotated[bool | None, Query(examples=[True])] = None,
    active: Annotated[bool | None, Query(examples=[True])] = None,
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=100, description="Text in the name or id", examples=["lao"]),
    ] = None,
) -> MembersPublic:
    return await queries.list_members(
        session=session,
        principal=principal,
        page=page,
        kind=kind,
        is_co_chair=is_co_chair,
        active=active,
        q=q,
    )


@router.post(
    "",
    status_code=201,
    response_model=MemberPublic,
    responses=problem_responses(401, 403, 409, 413, 422),
    summary="Register a member (admin)",
    description="Publishes `member.registered`. Honours `Idempotency-Key`.",
)
async def register_member(
    body: MemberCreate, principal: Admin, source: SourceDep, write: IdempotentWriteDep
) -> JSONResponse:
    async def create(session: AsyncSession) -> WriteOutcome:
        member = await changes.register_member(
            session=session, member_in=body, principal=principal, source=source
        )
        return WriteOutcome.versioned(
            member, version=member.version, status=201, location=f"/v1/members/{member.member_id}"
        )

    return await write.run(principal=principal, request_body=body, operation=create)


@router.get(
    "/{member_id}",
    response_model=MemberPublic,
    responses=problem_responses(401, 403, 404, 422),
    summary="Read one member",
)
async def get_member(
    member_id: MemberIdPath, session: SessionDep, principal: Reader, response: Response
) -> MemberPublic:
    member = await queries.get_member(session=session, member_id=member_id, principal=principal)
    set_etag(response, member.version)
    return member


@router.patch(
    "/{member_id}",
    response_model=MemberPublic,
    responses=problem_responses(401, 403, 404, 412, 422, 428),
    summary="Change a member (admin)",
    description="Only the fields sent change. Needs `If-Match`; publishes `member.updated` "
    "when something changed.",
)
async def update_member(
    member_id: MemberIdPath,
    body: MemberUpdate,
    session: SessionDep,
    principal: Admin,
    source: SourceDep,
    response: Response,
    if_match: IfMatchHeader = None,
) -> MemberPublic:
    member = await changes.update_member(
        session=session,
        member_id=member_id,
        changes=body,
        if_match=if_match,
        principal=principal,
        source=source,
    )
    set_etag(response, member.version)
    return member


@router.post(
    "/{member_id}/focal-points",
    status_code=201,
    response_model=MemberPublic,
    responses=problem_responses(401, 403, 404, 409, 412, 422),
    summary="Add a focal point to a member (admin)",
    description="`If-Match` is optional (adding overwrites nothing); publishes `member.updated` "
    "with the whole member. Honours `Idempotency-Key`.",
)
async def add_focal_point(
    member_id: MemberIdPath,
    body: FocalPointCreate,
    principal: Admin,
    source: SourceDep,
    write: IdempotentWriteDep,
    if_match: IfMatchHeader = None,
) -> JSONResponse:
    async def create(session: AsyncSession) -> WriteOutcome:
        member, focal_point_id = await changes.add_focal_point(
            session=session,
            member_id=member_id,
            focal_point_in=body,
            if_match=if_match,
            principal=principal,
            source=source,
        )
        return WriteOutcome.versioned(
            member,
            version=member.version,
            status=201,
            location=f"/v1/members/{member_id}/focal-points/{focal_point_id}",
        )

    return await write.run(principal=principal, request_body=body, operation=create)


@router.patch(
    "/{member_id}/focal-points/{focal_point_id}",
    response_model=MemberPublic,
    responses=problem_responses(401, 403, 404, 412, 422, 428),
    summary="Change a focal point (admin)",
    description="Only the fields sent change. Needs `If-Match` with the member's ETag; "
    "publishes `member.updated`.",
)
async def update_focal_point(
    member_id: MemberIdPath,
    focal_point_id: FocalPointIdPath,
    body: FocalPointUpdate,
    session: SessionDep,
    principal: Admin,
    source: SourceDep,
    response: Response,
    if_match: IfMatchHeader = None,
) -> MemberPublic:
    member = await changes.update_focal_point(
        session=session,
        member_id=member_id,
        focal_point_id=focal_point_id,
        changes=body,
        if_match=if_match,
        principal=principal,
        source=source,
    )
    set_etag(response, member.version)
    return member


@router.delete(
    "/{member_id}/focal-points/{focal_point_id}",
    response_model=MemberPublic,
    responses=problem_responses(401, 403, 404, 412, 422),
    summary="Remove a focal point (admin)",
    description="Deletes the contact (personal data). `If-Match` is optional; when sent it must "
    "be current. Publishes `member.updated`.",
)
async def remove_focal_point(
    member_id: MemberIdPath,
    focal_point_id: FocalPointIdPath,
    session: SessionDep,
    principal: Admin,
    source: SourceDep,
    response: Response,
    if_match: IfMatchHeader = None,
) -> MemberPublic:
    member = await changes.remove_focal_point(
        session=session,
        member_id=member_id,
        focal_point_id=focal_point_id,
        if_match=if_match,
        principal=principal,
        source=source,
    )
    set_etag(response, member.version)
    return member
