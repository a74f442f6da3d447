"""HTTP routes of the reporting service."""

from __future__ import annotations

from typing import Annotated

from bali_common.auth import Principal, Role, require_roles
from bali_common.deps import SessionDep
from bali_common.problems import problem_responses
from fastapi import APIRouter, Depends

from bali_reporting import service
from bali_reporting.models import EventTalliesPublic

router = APIRouter(prefix="/v1", tags=["pipeline"])
Viewer = Annotated[Principal, Depends(require_roles(Role.ops, Role.co_chair))]


@router.get(
    "/pipeline/event-counts",
    response_model=EventTalliesPublic,
    responses=problem_responses(401, 403),
    summary="Events delivered to reporting, by type",
)
async def event_counts(session: SessionDep, _viewer: Viewer) -> EventTalliesPublic:
    items = await service.list_event_tallies(session=session)
    return EventTalliesPublic(items=items, total=sum(item.count for item in items))
