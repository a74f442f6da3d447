"""The OpenAPI document lists every answer a route can give: the problems that every route
shares (authentication, rate limit, body size, validation) are added here once, and every
problem is documented as what it is, application/problem+json (RFC 9457 section 3)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from pydantic import TypeAdapter

from bali_common.problems import PROBLEM_MEDIA_TYPE, Problem

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})
#: FastAPI's own validation error schemas: our handler answers a Problem instead.
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")

_SHARED = {
    401: "Missing, malformed or expired bearer token",
    413: "Request body larger than the service accepts",
    422: "Request validation failed: `errors` names each field",
    429: "Rate limit exceeded: retry after `Retry-After` seconds",
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying (RFC 9110 section 10.2.3)",
        "schema": {"type": "integer", "minimum": 1},
    }
}


def document_problems(spec: dict[str, Any], *, unthrottled: Collection[str]) -> dict[str, Any]:
    """Complete `spec` in place: shared problem answers on every operation, problem+json as
    the media type of every error answer; `unthrottled` paths never answer 429."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    _add_problem_schema(schemas)
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            if method in _METHODS:
                _complete(operation, throttled=path not in unthrottled)
    for name in _FASTAPI_VALIDATION:
        schemas.pop(name, None)
    return spec


def _complete(operation: dict[str, Any], *, throttled: bool) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    shared: list[int] = []
    if operation.get("security"):
        shared.append(401)
    if "requestBody" in operation:
        shared += [413, 422]
    if operation.get("parameters"):
        shared.append(422)
    if throttled:
        shared.append(429)
    for shared_status in shared:
        responses.setdefault(str(shared_status), {"description": _SHARED[shared_status]})
    if throttled:
        responses["429"].setdefault("headers", {}).update(_RETRY_AFTER)
    for status, response in responses.items():
        if status.isdigit() and int(status) >= 400:
            content = response.setdefault("content", {})
            # A route may also answer some errors as a page (text/html): those stay.
            content.pop("application/json", None)
            content[PROBLEM_MEDIA_TYPE] = {"schema": dict(_PROBLEM_REF)}


def _add_problem_schema(schemas: dict[str, Any]) -> None:
    generated = TypeAdapter(Problem).json_schema(ref_template="#/components/schemas/{model}")
    for name, schema in generated.pop("$defs", {}).items():
        schemas.setdefault(name, schema)
    schemas.setdefault("Problem", generated)
