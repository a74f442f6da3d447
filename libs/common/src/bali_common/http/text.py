"""Text input the databases can store: a NUL character anywhere in the path, the query or a
JSON body is a 422 naming the field (PostgreSQL text refuses U+0000 and would answer a 500)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from bali_common.problems import field_error

_NUL = "\x00"
_MESSAGE = "must not contain the NUL character (U+0000)"


async def refuse_nul_characters(request: Request) -> None:
    """App-wide dependency: runs after the body is parsed, before any route reads it."""
    for name, value in request.path_params.items():
        if _NUL in str(value):
            raise field_error(f"path.{name}", _MESSAGE)
    for name, value in request.query_params.multi_items():
        if _NUL in name or _NUL in value:
            raise field_error(f"query.{name.replace(_NUL, '')}", _MESSAGE)
    if "json" not in request.headers.get("content-type", ""):
        return  # form fields and files are not stored as text
    body = await request.body()
    if b"\\u0000" not in body:
        return
    try:
        document = json.loads(body)
    except ValueError:
        return  # the body parser has answered this already
    where = _nul_in(document, "body")
    if where is not None:
        raise field_error(where, _MESSAGE)


def _nul_in(value: Any, where: str) -> str | None:
    if isinstance(value, str):
        return where if _NUL in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if _NUL in key:
                return f"{where}.{key.replace(_NUL, '')}"
            found = _nul_in(item, f"{where}.{key}")
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_in(item, f"{where}.{index}")
            if found is not None:
                return found
    return None
