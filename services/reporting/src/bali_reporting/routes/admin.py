"""Administration of the reporting service: rebuild the projections and follow the rebuild."""

from __future__ import annotations

from typing import Annotated

from bali_common.problems import not_found, problem_responses
from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from bali_reporting.deps import Admin, PartsDep
from bali_reporting.rebuild.models import RebuildStatus

router = APIRouter(prefix="/v1/admin/rebuild", tags=["operations"])

RunId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="Rebuild run id")]


@router.post(
    "",
    status_code=202,
    response_model=RebuildStatus,
    responses=problem_responses(401, 403, 409),
    summary="Rebuild every projection from the topics, then swap the new tables in",
    description="Replays every topic from offset 0 into fresh tables while the reports stay "
    "served, pauses the live consumer briefly to catch up with it, swaps the tables in one "
    "transaction and resumes. Answers at once (202) with the run; follow it at `Location`. "
    "One rebuild at a time (409 while one runs).",
)
async def request_rebuild(principal: Admin, parts: PartsDep) -> JSONResponse:
    run = await parts.rebuilds.request(requested_by=principal.subject)
    return JSONResponse(
        run.model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/v1/admin/rebuild/{run.id}"},
    )


@router.get(
    "",
    response_model=RebuildStatus,
    responses=problem_responses(401, 403, 404),
    summary="The latest rebuild and its progress",
)
async def latest_rebuild(_admin: Admin, parts: PartsDep) -> RebuildStatus:
    run = await parts.rebuilds.status()
    if run is None:
        raise not_found("No rebuild has been requested")
    return run


@router.get(
    "/{run_id}",
    response_model=RebuildStatus,
    responses=problem_responses(401, 403, 404, 422),
    summary="One rebuild and its progress: events read, applied, target and events/s",
)
async def rebuild_status(run_id: RunId, _admin: Admin, parts: PartsDep) -> RebuildStatus:
    run = await parts.rebuilds.status(run_id)
    if run is None:
        raise not_found(f"No rebuild {run_id}")
    return run
