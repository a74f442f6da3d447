"""Cursor pagination with a capped page size (AIP-158): opaque cursors, never offsets."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, Field

from bali_common.problems import field_error

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50

ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    items: list[ItemT]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` to get the next page; absent on the last page"
    )


class PageRequest(BaseModel):
    page_size: int
    cursor: list[Any] | None = Field(default=None, description="Decoded sort key to resume after")


def encode_cursor(sort_key: list[Any]) -> str:
    raw = json.dumps(sort_key, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *, field: str = "query.cursor") -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as error:
        raise field_error(field, "not a cursor returned by this API") from error
    if not isinstance(value, list):
        raise field_error(field, "not a cursor returned by this API")
    return value


def page_request(
    page_size: Annotated[
        int,
        Query(ge=1, le=MAX_PAGE_SIZE, description=f"Items per page, at most {MAX_PAGE_SIZE}"),
    ] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[
        str | None, Query(max_length=512, description="Opaque cursor from a previous page")
    ] = None,
) -> PageRequest:
    return PageRequest(page_size=page_size, cursor=decode_cursor(cursor) if cursor else None)


PageRequestDep = Annotated[PageRequest, Depends(page_request)]


def next_cursor(rows: list[Any], page_size: int, sort_key: Any) -> str | None:
    """Given `page_size + 1` fetched rows, the cursor after the last returned one, if more exist."""
    if len(rows) <= page_size:
        return None
    return encode_cursor(list(sort_key(rows[page_size - 1])))
