"""Parts that several streams' events share."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Actor(BaseModel):
    """Who did it: the token subject and, for member agencies, their member id."""

    model_config = ConfigDict(frozen=True)

    subject: str
    member_id: str | None = None
    name: str | None = None
