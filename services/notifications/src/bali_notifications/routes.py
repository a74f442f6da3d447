"""HTTP routes of the notifications service: subscriptions, deliveries and the in-app inbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated

from bali_common.events.notifications import Channel
from bali_common.http.concurrency import IfMatchHeader, set_etag
from bali_common.http.idempotency import IdempotentWriteDep, WriteOutcome
from bali_common.http.pagination import Page, PageRequestDep
from bali_common.problems import problem_responses
from fastapi import APIRouter, Header, Path, Query, Response
from fastapi.responses import JSONResponse, StreamingResponse
from sqlmodel.ext.asyncio.session import AsyncSession

from bali_notifications import service
from bali_notifications.deliveries.models import DeliveryDetail, DeliveryFilters, DeliveryPublic
from bali_notifications.deps import (
    DeliveryViewer,
    InboxReader,
    NotificationsDep,
    RuntimeDep,
    SessionDep,
    SubscriptionManager,
)
from bali_notifications.inbox.models import (
    MAX_ITEM_ID,
    InboxItemPublic,
    InboxItemUpdate,
    InboxPage,
)
from bali_notifications.subscriptions.models import (
    SecretRotated,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionPublic,
    SubscriptionUpdate,
)

subscriptions_router = APIRouter(prefix="/v1/subscriptions", tags=["subscriptions"])
deliveries_router = APIRouter(prefix="/v1/deliveries", tags=["deliveries"])
inbox_router = APIRouter(prefix="/v1/inbox", tags=["inbox"])

# --- subscriptions ------------------------------------------------------------------------


@subscriptions_router.post(
    "",
    status_code=201,
    response_model=SubscriptionCreated,
    responses=problem_responses(401, 403, 409, 422),
    summary="Subscribe to events on a channel (the webhook secret is shown only here)",
)
async def create_subscription(
    body: SubscriptionCreate,
    write: IdempotentWriteDep,
    parts: NotificationsDep,
    principal: SubscriptionManager,
) -> JSONResponse:
    async def operation(session: AsyncSession) -> WriteOutcome:
        created = await service.create_subscription(
            session=session, sub_in=body, principal=principal, guard=parts.guard
        )
        return WriteOutcome.versioned(
            created,
            version=created.version,
            status=201,
            location=f"/v1/subscriptions/{created.id}",
        )

    return await write.run(principal=principal, request_body=body, operation=operation)


@subscriptions_router.get(
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
    return await service.list_subscriptions(
        session=session, principal=principal, page=page, channel=channel, member_id=member_id
    )


@subscriptions_router.get(
    "/{subscription_id}",
    response_model=SubscriptionPublic,
    responses=problem_responses(401, 403, 404),
    summary="Get a subscription (ETag for updates)",
)
async def get_subscription(
    subscription_id: str, session: SessionDep, principal: SubscriptionManager, response: Response
) -> SubscriptionPublic:
    subscription = await service.get_subscription(
        session=session, subscription_id=subscription_id, principal=principal
    )
    set_etag(response, subscription.version)
    return service.subscription_public(subscription)


@subscriptions_router.patch(
    "/{subscription_id}",
    response_model=SubscriptionPublic,
    responses=problem_responses(401, 403, 404, 412, 422, 428),
    summary="Change a subscription's filters or target; enabled: true re-enables it after a 410",
)
async def update_subscription(
    subscription_id: str,
    body: SubscriptionUpdate,
    session: SessionDep,
    parts: NotificationsDep,
    principal: SubscriptionManager,
    response: Response,
    if_match: IfMatchHeader = None,
) -> SubscriptionPublic:
    subscription = await service.update_subscription(
        session=session,
        subscription_id=subscription_id,
        changes=body,
        if_match=if_match,
        principal=principal,
        guard=parts.guard,
    )
    set_etag(response, subscription.version)
    return service.subscription_public(subscription)


@subscriptions_router.delete(
    "/{subscription_id}",
    status_code=204,
    responses=problem_responses(401, 403, 404),
    summary="Delete a subscription; pending deliveries to it are dropped",
)
async def delete_subscription(
    subscription_id: str, session: SessionDep, principal: SubscriptionManager
) -> Response:
    await service.delete_subscription(
        session=session, subscription_id=subscription_id, principal=principal
    )
    return Response(status_code=204)


@subscriptions_router.post(
    "/{subscription_id}/rotate-secret",
    response_model=SecretRotated,
    responses=problem_responses(401, 403, 404, 409),
    summary="Rotate a webhook's signing secret; the old one keeps signing for the overlap",
)
async def rotate_secret(
    subscription_id: str,
    session: SessionDep,
    parts: NotificationsDep,
    principal: SubscriptionManager,
) -> SecretRotated:
    return await service.rotate_secret(
        session=session,
        subscription_id=subscription_id,
        principal=principal,
        overlap=timedelta(seconds=parts.settings.webhook_secret_rotation_overlap_s),
    )


# --- deliveries ---------------------------------------------------------------------------


@deliveries_router.get(
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
    return await service.list_deliveries(
        session=session, principal=principal, page=page, filters=filters
    )


@deliveries_router.get(
    "/{delivery_id}",
    response_model=DeliveryDetail,
    responses=problem_responses(401, 403, 404),
    summary="Get a delivery with every attempt (time, status code, latency, error)",
)
async def get_delivery(
    delivery_id: str, session: SessionDep, principal: DeliveryViewer
) -> DeliveryDetail:
    return await service.get_delivery(session=session, delivery_id=delivery_id, principal=principal)


@deliveries_router.post(
    "/{delivery_id}/replay",
    status_code=202,
    response_model=DeliveryPublic,
    responses=problem_responses(401, 403, 404, 409),
    summary="Send a failed or exhausted delivery again, with a fresh retry budget",
)
async def replay_delivery(
    delivery_id: str, session: SessionDep, parts: NotificationsDep, principal: DeliveryViewer
) -> DeliveryPublic:
    replayed = await service.replay_delivery(
        session=session, delivery_id=delivery_id, principal=principal
    )
    parts.hub.wake_dispatcher()
    return replayed


# --- inbox --------------------------------------------------------------------------------


@inbox_router.get(
    "",
    response_model=InboxPage,
    responses=problem_responses(401, 403, 422),
    summary="Your inbox (your member's and your own notifications), newest first",
)
async def list_inbox(
    session: SessionDep,
    principal: InboxReader,
    page: PageRequestDep,
    unread: Annotated[bool, Query(description="Only unread items")] = False,
) -> InboxPage:
    return await service.list_inbox(
        session=session, principal=principal, page=page, unread_only=unread
    )


@inbox_router.patch(
    "/{item_id}",
    response_model=InboxItemPublic,
    responses=problem_responses(401, 403, 404, 422),
    summary="Mark an inbox item read or unread",
)
async def update_inbox_item(
    item_id: Annotated[int, Path(ge=1, le=MAX_ITEM_ID)],
    body: InboxItemUpdate,
    session: SessionDep,
    principal: InboxReader,
) -> InboxItemPublic:
    return await service.mark_inbox_item(
        session=session, item_id=item_id, principal=principal, read=body.read
    )


@inbox_router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"},
        **problem_responses(401, 403),
    },
    summary="Live inbox: unread items first, then each new one as it arrives (SSE)",
)
async def stream_inbox(
    runtime: RuntimeDep,
    parts: NotificationsDep,
    principal: InboxReader,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", max_length=20, description="Resume after this item id"),
    ] = None,
) -> StreamingResponse:
    owners = service.inbox_owners(principal)
    resume_after = None
    if last_event_id and last_event_id.isdigit() and int(last_event_id) <= MAX_ITEM_ID:
        resume_after = int(last_event_id)
    heartbeat = parts.settings.inbox_stream_heartbeat_s

    async def frames() -> AsyncIterator[str]:
        # Listen before the catch-up query so nothing committed in between is missed.
        async with parts.hub.listen(owners) as queue:
            async with runtime.sessions() as session:
                backlog = await service.inbox_items_after(
                    session=session, owners=owners, after_id=resume_after
                )
                last_id = resume_after
                if last_id is None:
                    last_id = await service.latest_inbox_id(session=session, owners=owners)
            yield "retry: 3000\n\n"
            for item in backlog:
                last_id = max(last_id, item.id)
                yield _frame(item)
            while True:
                try:
                    pushed = await asyncio.wait_for(queue.get(), heartbeat)
                except TimeoutError:
                    # Items another replica stored reach this stream by polling.
                    async with runtime.sessions() as session:
                        polled = await service.inbox_items_after(
                            session=session, owners=owners, after_id=last_id
                        )
                    for item in polled:
                        last_id = max(last_id, item.id)
                        yield _frame(item)
                    yield ": keep-alive\n\n"
                    continue
                if pushed is None:
                    return
                if pushed.id > last_id:
                    last_id = pushed.id
                    yield _frame(pushed)

    return StreamingResponse(
        frames(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _frame(item: InboxItemPublic) -> str:
    return f"id: {item.id}\nevent: inbox.item\ndata: {item.model_dump_json()}\n\n"
