"""HTTP routes of the in-app inbox: list, mark read or unread, and the live stream."""

from __future__ import annotations

from typing import Annotated

from bali_common.http.integers import parse_decimal
from bali_common.http.pagination import PageRequestDep
from bali_common.problems import problem_responses
from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import StreamingResponse

from bali_notifications.deps import InboxReader, PartsDep, RuntimeDep, SessionDep
from bali_notifications.inbox import service, stream
from bali_notifications.inbox.models import MAX_ITEM_ID, InboxItemPublic, InboxItemUpdate, InboxPage

router = APIRouter(prefix="/v1/inbox", tags=["inbox"])


@router.get(
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
    return await service.find(session=session, principal=principal, page=page, unread_only=unread)


@router.patch(
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
    return await service.mark(session=session, item_id=item_id, principal=principal, read=body.read)


@router.get(
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
    parts: PartsDep,
    principal: InboxReader,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", max_length=20, description="Resume after this item id"),
    ] = None,
) -> StreamingResponse:
    # Anything but an id this stream could have sent starts over from the unread items.
    resume_after = parse_decimal(last_event_id, maximum=MAX_ITEM_ID) if last_event_id else None
    return StreamingResponse(
        stream.frames(
            sessions=runtime.sessions,
            hub=parts.hub,
            principal=principal,
            resume_after=resume_after,
            heartbeat=parts.settings.inbox_stream_heartbeat_s,
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
