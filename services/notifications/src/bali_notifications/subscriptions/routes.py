"""HTTP routes of subscriptions: a member manages its own; administrators manage any."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated

from bali_common.events.notifications import Channel
from bali_common.http.concurrency import IfMatchHeader, set_etag
from bali_common.http.idempotency import IdempotentWrite, IdempotentWriteDep, WriteOutcome
from bali_common.http.pagination import Page, PageRequestDep
from bali_common.problems import problem_responses
from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_notifications.deps import PartsDep, SessionDep, SubscriptionManager
from bali_notifications.parts import NotificationParts
from bali_notifications.subscriptions import service
from bali_notifications.subscriptions.models import (
    SecretRotated,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionPublic,
    SubscriptionUpdate,
)

router = APIRouter(prefix="/v1/subscriptions", tags=["subscriptions"])
#: Headers of a response's body, set anew when the body is.
_BODY_HEADERS = ("content-length", "content-type")


@router.post(
    "",
    status_code=201,
    response_model=SubscriptionCreated,
    responses=problem_responses(401, 403, 409, 422),
    summary="Subscribe to events on a channel (the webhook secret is shown only here)",
)
async def create_subscription(
    body: SubscriptionCreate,
    write: IdempotentWriteDep,
    parts: PartsDep,
    principal: SubscriptionManager,
) -> JSONResponse:
    shown: dict[str, str] = {}

    async def operation(session: AsyncSession) -> WriteOutcome:
        created = await service.create(
            session=session,
            sub_in=body,
            principal=principal,
            senders=parts.senders,
            box=parts.secrets,
        )
        if created.secret is not None:
            shown[created.id] = created.secret
        return WriteOutcome.versioned(
            created.model_copy(update={"secret": None}),
            version=created.version,
            status=201,
            location=f"/v1/subscriptions/{created.id}",
        )

    response = await write.run(principal=principal, request_body=body, operation=operation)
    if response.status_code != 201 or body.channel is not Channel.webhook:
        return response
    return await _with_secret(response, shown=shown, write=write, parts=parts)


async def _with_secret(
    response: JSONResponse,
    *,
    shown: dict[str, str],
    write: IdempotentWrite,
    parts: NotificationParts,
) -> JSONResponse:
    """The answer kept for a retried request is stored as it is, so it holds no secret: it is
    put back here, the one just made or, on a replay, the subscription's current one."""
    answer = json.loads(bytes(response.body))
    secret = shown.get(answer["id"])
    if secret is None:
        async with write.sessions() as session:
            secret = await service.current_secret(
                session=session, subscription_id=answer["id"], box=parts.secrets
            )
    headers = {k: v for k, v in response.headers.items() if k not in _BODY_HEADERS}
    return JSONResponse({**answer, "secret": secret}, status_code=201, headers=headers)


@router.get(
    "",
    response_model=Page[SubscriptionPublic],
    responses=problem_responses(401, 403, 422),
    summary="List subscriptions (your member's; administrators see all)",
)
async def list_subscriptions(
    session: SessionDep,
    principal: SubscriptionManager,
    page: PageRequestDep,
    channel: Channel | None = None,
    member_id: Annotated[str | None, Query(max_length=100)] = None,
) -> Page[SubscriptionPublic]:
    return await service.find(
        session=session, principal=principal, page=page, channel=channel, member_id=member_id
    )


@router.get(
    "/{subscription_id}",
    response_model=SubscriptionPublic,
    responses=problem_responses(401, 403, 404),
    summary="Get a subscription (ETag for updates)",
)
async def get_subscription(
    subscription_id: str, session: SessionDep, principal: SubscriptionManager, response: Response
) -> SubscriptionPublic:
    subscription = await service.get(
        session=session, subscription_id=subscription_id, principal=principal
    )
    set_etag(response, subscription.version)
    return subscription


@router.patch(
    "/{subscription_id}",
    response_model=SubscriptionPublic,
    responses=problem_responses(401, 403, 404, 412, 422, 428),
    summary="Change a subscription's filters or target; enabled: true re-enables it after a 410",
)
async def update_subscription(
    subscription_id: str,
    body: SubscriptionUpdate,
    session: SessionDep,
    parts: PartsDep,
    principal: SubscriptionManager,
    response: Response,
    if_match: IfMatchHeader = None,
) -> SubscriptionPublic:
    subscription = await service.update(
        session=session,
        subscription_id=subscription_id,
        changes=body,
        if_match=if_match,
        principal=principal,
        senders=parts.senders,
    )
    set_etag(response, subscription.version)
    return subscription


@router.delete(
    "/{subscription_id}",
    status_code=204,
    responses=problem_responses(401, 403, 404),
    summary="Delete a subscription; pending deliveries to it are dropped",
)
async def delete_subscription(
    subscription_id: str, session: SessionDep, principal: SubscriptionManager
) -> Response:
    await service.delete(session=session, subscription_id=subscription_id, principal=principal)
    return Response(status_code=204)


@router.post(
    "/{subscription_id}/rotate-secret",
    response_model=SecretRotated,
    responses=problem_responses(401, 403, 404, 409),
    summary="Rotate a webhook's signing secret; the old one keeps signing for the overlap",
)
async def rotate_secret(
    subscription_id: str,
    session: SessionDep,
    parts: PartsDep,
    principal: SubscriptionManager,
) -> SecretRotated:
    return await service.rotate_secret(
        session=session,
        subscription_id=subscription_id,
        principal=principal,
        overlap=timedelta(seconds=parts.settings.webhook_secret_rotation_overlap_s),
        box=parts.secrets,
    )
