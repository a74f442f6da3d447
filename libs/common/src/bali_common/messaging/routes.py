"""Admin routes every service mounts: list and replay its dead letters."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel

from bali_common.auth import Principal, Role, require_roles
from bali_common.deps import SessionDep
from bali_common.http.integers import INTEGER_MAX
from bali_common.messaging.deadletters import (
    DeadLetterNotReplayable,
    DeadLetterPublic,
    list_dead_letters,
    replay_dead_letter,
)
from bali_common.problems import ProblemError, problem_responses

router = APIRouter(prefix="/v1/admin/dead-letters", tags=["operations"])
OpsOrAdmin = Annotated[Principal, Depends(require_roles(Role.ops, Role.admin))]
#: Ids reach an INTEGER column: a larger number is a 422 naming the parameter, not a 500.
LetterId = Annotated[int, Path(ge=0, le=INTEGER_MAX, description="Dead letter id")]


class DeadLetterPage(BaseModel):
    items: list[DeadLetterPublic]
    next_cursor: int | None


@router.get("", response_model=DeadLetterPage, responses=problem_responses(401, 403, 422))
async def list_letters(
    session: SessionDep,
    _principal: OpsOrAdmin,
    after: Annotated[
        int, Query(ge=0, le=INTEGER_MAX, description="Cursor: id of the last item seen")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    include_replayed: bool = False,
) -> DeadLetterPage:
    letters = await list_dead_letters(
        session=session, after_id=after, limit=limit, include_replayed=include_replayed
    )
    items = [DeadLetterPublic.model_validate(letter, from_attributes=True) for letter in letters]
    return DeadLetterPage(items=items, next_cursor=items[-1].id if len(items) == limit else None)


@router.post(
    "/{letter_id}/replay",
    response_model=DeadLetterPublic,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def replay_letter(
    letter_id: LetterId, session: SessionDep, _principal: OpsOrAdmin
) -> DeadLetterPublic:
    try:
        letter = await replay_dead_letter(session=session, letter_id=letter_id)
    except DeadLetterNotReplayable as error:
        raise ProblemError(409, "Dead letter cannot be replayed", str(error)) from error
    if letter is None:
        raise ProblemError(404, "Not Found", f"No dead letter {letter_id}")
    await session.commit()
    return DeadLetterPublic.model_validate(letter, from_attributes=True)
