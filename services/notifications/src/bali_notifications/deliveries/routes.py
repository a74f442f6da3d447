"""HTTP routes of deliveries: members see their own, operations staff see all."""

from __future__ import annotations

from typing import Annotated

from bali_common.http.pagination import Page, PageRequestDep
from bali_common.problems import problem_responses
from fastapi import APIRouter, Query

from bali_notifications.deliveries import service
from bali_notifications.deliveries.models import DeliveryDetail, DeliveryFilters, DeliveryPublic
from bali_notifications.deps import DeliveryViewer, PartsDep, SessionDep

router = APIRouter(prefix="/v1/deliveries", tags=["deliveries"])


@router.get(
    "",
    response_model=Page[DeliveryPublic],
    responses=problem_responses(401, 403, 422),
    summary="List deliveries, newest first (members see their own; ops see all)",
)
async def list_deliveries(
    session: SessionDep,
    principal: DeliveryViewer,
    page: PageRequestDep,
    filters: Annotated[DeliveryFilters, Query()],
) -> Page[DeliveryPublic]:
    return await service.find(session=session, principal=principal, page=page, filters=filters)


@router.get(
    "/{delivery_id}",
    response_model=DeliveryDetail,
    responses=problem_responses(401, 403, 404),
    summary="Get a delivery with every attempt (time, status code, latency, error)",
)
async def get_delivery(
    delivery_id: str, session: SessionDep, principal: DeliveryViewer
) -> DeliveryDetail:
    return await service.get(session=session, delivery_id=delivery_id, principal=principal)


@router.post(
    "/{delivery_id}/replay",
    status_code=202,
    response_model=DeliveryPublic,
    responses=problem_responses(401, 403, 404, 409),
    summary="Send a failed or exhausted delivery again, with a fresh retry budget",
)
async def replay_delivery(
    delivery_id: str, session: SessionDep, parts: PartsDep, principal: DeliveryViewer
) -> DeliveryPublic:
    return await service.replay(
        session=session, delivery_id=delivery_id, principal=principal, hub=parts.hub
    )
