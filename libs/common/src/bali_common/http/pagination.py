"""Cursor pagination with a capped page size (AIP-158): opaque keyset cursors, never offsets."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import BigInteger, and_, or_
from sqlalchemy.orm import InstrumentedAttribute, Mapped
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from bali_common.db import as_utc
from bali_common.http.integers import BIGINT_MAX, INTEGER_MAX
from bali_common.problems import field_error

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50
_MAX_TEXT = 256

ItemT = TypeVar("ItemT")
RowT = TypeVar("RowT")


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


def _not_a_cursor(field: str = "query.cursor") -> Exception:
    return field_error(field, "not a cursor returned by this API")


def decode_cursor(cursor: str, *, field: str = "query.cursor") -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as error:
        raise _not_a_cursor(field) from error
    if not isinstance(value, list):
        raise _not_a_cursor(field)
    return value


async def page_request(
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


@dataclass(frozen=True)
class KeysetPage(Generic[RowT]):
    rows: list[RowT]
    next_cursor: str | None


async def keyset_page(
    session: AsyncSession,
    query: SelectOfScalar[RowT],
    *,
    page: PageRequest,
    order_by: Sequence[Mapped[Any]],
    descending: bool = False,
) -> KeysetPage[RowT]:
    """One page of `query` ordered by `order_by` (unique together), resuming after the cursor.

    The cursor holds the last row's sort key; each value is checked against its column's
    type and range before it reaches the database, so a crafted cursor is a 422, never a 500.
    """
    columns = [_attribute(column) for column in order_by]
    if page.cursor is not None:
        after = _cursor_values(page.cursor, columns)
        query = query.where(_beyond(columns, after, descending=descending))
    ordering = [column.desc() if descending else column.asc() for column in columns]
    rows = list((await session.exec(query.order_by(*ordering).limit(page.page_size + 1))).all())
    shown = rows[: page.page_size]
    cursor = None
    if len(rows) > page.page_size:
        cursor = encode_cursor([_cursor_value(getattr(shown[-1], c.key)) for c in columns])
    return KeysetPage(rows=shown, next_cursor=cursor)


def _attribute(column: Mapped[Any]) -> InstrumentedAttribute[Any]:
    """`col(Model.field)`: typed as `Mapped`, an instrumented column attribute at run time."""
    if not isinstance(column, InstrumentedAttribute):
        raise TypeError(f"order by model columns, not {column!r}")
    return column


def _beyond(
    columns: Sequence[InstrumentedAttribute[Any]], values: Sequence[Any], *, descending: bool
) -> Any:
    """Rows strictly after `values` in the order: (a, b) > (x, y) as a < x or (a = x and b < y)."""
    column, value = columns[0], values[0]
    first = column < value if descending else column > value
    if len(columns) == 1:
        return first
    return or_(
        first, and_(column == value, _beyond(columns[1:], values[1:], descending=descending))
    )


def _cursor_value(value: Any) -> Any:
    return as_utc(value).isoformat() if isinstance(value, datetime) else value


def _cursor_values(cursor: list[Any], columns: Sequence[InstrumentedAttribute[Any]]) -> list[Any]:
    if len(cursor) != len(columns):
        raise _not_a_cursor()
    return [_parsed(value, column) for value, column in zip(cursor, columns, strict=True)]


def _parsed(value: Any, column: InstrumentedAttribute[Any]) -> Any:
    expected = column.type.python_type
    if expected is int:
        # Within the column's own range: PostgreSQL refuses an int4 parameter past 2**31 - 1.
        bound = BIGINT_MAX if isinstance(column.type, BigInteger) else INTEGER_MAX
        if isinstance(value, bool) or not isinstance(value, int) or abs(value) > bound:
            raise _not_a_cursor()
        return value
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise _not_a_cursor()
    if expected is datetime:
        try:
            return as_utc(datetime.fromisoformat(value))
        except ValueError as error:
            raise _not_a_cursor() from error
    return value
