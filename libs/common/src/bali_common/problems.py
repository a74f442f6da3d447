"""RFC 9457 problem details for every error: fields named, no tracebacks leaked."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from bali_common.auth import AuthenticationError, AuthorizationError

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://bali-process.example/problems/"


class FieldProblem(BaseModel):
    field: str = Field(description="Dotted location of the offending input, e.g. body.items.0")
    message: str
    type: str


class Problem(BaseModel):
    """RFC 9457 section 3 members plus `errors` for validation failures."""

    type: str = Field(default="about:blank", examples=[f"{PROBLEM_TYPE_BASE}validation-error"])
    title: str = Field(examples=["Request validation failed"])
    status: int = Field(examples=[422])
    detail: str | None = Field(default=None, examples=["Invalid field: body.title"])
    instance: str | None = None
    errors: list[FieldProblem] | None = None


class ProblemError(Exception):
    """Raise from a service function to answer with a problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        slug: str | None = None,
        errors: Sequence[FieldProblem] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.slug = slug
        self.errors = list(errors) if errors else None
        self.headers = dict(headers or {})


def field_error(field: str, message: str, *, status: int = 422) -> ProblemError:
    """A domain rule broken by one field, reported like a schema validation error."""
    return ProblemError(
        status,
        "Request validation failed",
        f"Invalid field: {field}: {message}",
        slug="validation-error",
        errors=[FieldProblem(field=field, message=message, type="value_error")],
    )


def not_found(detail: str) -> ProblemError:
    """The same answer for a missing id and one hidden from the caller (OWASP API1; AIP-164:
    permission is checked before existence is revealed)."""
    return ProblemError(404, "Not Found", detail, slug="not-found")


def forbidden(detail: str, *, field: str | None = None) -> ProblemError:
    errors = [FieldProblem(field=field, message=detail, type="forbidden")] if field else None
    return ProblemError(403, "Forbidden", detail, slug="forbidden", errors=errors)


def conflict(detail: str, *, slug: str = "conflict") -> ProblemError:
    return ProblemError(409, "Conflict", detail, slug=slug)


def illegal_transition(detail: str) -> ProblemError:
    """A lifecycle step that the resource's current state does not allow."""
    return ProblemError(409, "Transition not allowed", detail, slug="illegal-transition")


def problem_response(
    request: Request,
    *,
    status: int,
    title: str,
    detail: str | None = None,
    slug: str | None = None,
    errors: Sequence[FieldProblem] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = Problem(
        type=f"{PROBLEM_TYPE_BASE}{slug}" if slug else "about:blank",
        title=title,
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=list(errors) if errors else None,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=dict(headers or {}),
    )


def _field_name(location: Sequence[Any]) -> str:
    return ".".join(str(part) for part in location)


def _validation_problems(errors: Sequence[Any]) -> list[FieldProblem]:
    return [
        FieldProblem(
            field=_field_name(error.get("loc", ())),
            message=str(error.get("msg", "invalid")),
            type=str(error.get("type", "value_error")),
        )
        for error in errors
    ]


def _unreadable_body(request: Request, error: StarletteHTTPException) -> JSONResponse:
    """FastAPI and Starlette answer 400 only for a body they cannot parse (not UTF-8, broken
    multipart, too many form parts); the services never do. It is a validation failure of the
    body like any other, so it gets the one answer validation has: 422 naming the field."""
    message = error.detail if isinstance(error.detail, str) else "unreadable body"
    return problem_response(
        request,
        status=422,
        title="Request validation failed",
        detail=f"Invalid field: body: {message}",
        slug="validation-error",
        errors=[FieldProblem(field="body", message=message, type="body_unreadable")],
    )


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = _validation_problems(error.errors())
        fields = ", ".join(dict.fromkeys(p.field for p in problems))
        return problem_response(
            request,
            status=422,
            title="Request validation failed",
            detail=f"Invalid field{'s' if len(problems) > 1 else ''}: {fields}",
            slug="validation-error",
            errors=problems,
        )

    @app.exception_handler(ProblemError)
    async def on_problem(request: Request, error: ProblemError) -> JSONResponse:
        return problem_response(
            request,
            status=error.status,
            title=error.title,
            detail=error.detail,
            slug=error.slug,
            errors=error.errors,
            headers=error.headers,
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.status_code == 400:
            return _unreadable_body(request, error)
        title = _REASONS.get(error.status_code, "Error")
        detail = error.detail if isinstance(error.detail, str) and error.detail != title else None
        return problem_response(
            request,
            status=error.status_code,
            title=title,
            detail=detail,
            headers=error.headers,
        )

    async def on_auth(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, AuthenticationError | AuthorizationError)
        return problem_response(
            request,
            status=error.status_code,
            title=error.title,
            detail=error.detail,
            headers=error.headers,
        )

    app.add_exception_handler(AuthenticationError, on_auth)
    app.add_exception_handler(AuthorizationError, on_auth)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            request,
            status=500,
            title="Internal Server Error",
            detail="The error was logged; the request may be retried.",
        )


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    412: "Precondition Failed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    428: "Precondition Required",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries documenting the problem documents a route may return."""
    return {
        status: {"model": Problem, "description": _REASONS.get(status, "Error")}
        for status in statuses
    }
