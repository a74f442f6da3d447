"""Optimistic concurrency with ETag and If-Match (RFC 9110 section 13.1.1; AIP-154)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Response

from bali_common.http.integers import parse_decimal
from bali_common.problems import ProblemError


def etag_of(version: int) -> str:
    """A strong validator from the row's version counter."""
    return f'"v{version}"'


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = etag_of(version)


IfMatchHeader = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description="ETag of the version being updated; a stale one is refused with 412",
        examples=['"v3"'],
    ),
]


def expected_version(if_match: str | None) -> int:
    """The version the client last saw; 428 without one (RFC 6585 section 3), 412 if unusable."""
    if if_match is None:
        raise ProblemError(
            428,
            "Precondition Required",
            "Send If-Match with the ETag of the version you are changing.",
            slug="precondition-required",
        )
    candidate = if_match.strip()
    if candidate.startswith("W/"):
        candidate = candidate[2:]
    candidate = candidate.strip('"')
    # Our ETags are "v<version>" (etag_of); anything else cannot match a current version.
    version = parse_decimal(candidate[1:]) if candidate.startswith("v") else None
    if version is None:
        raise stale_version()
    return version


def stale_version() -> ProblemError:
    return ProblemError(
        412,
        "Precondition Failed",
        "The resource changed since you read it; fetch it again and reapply your change.",
        slug="stale-version",
    )


def check_version(current: int, if_match: str | None) -> None:
    """`If-Match: *` matches any current version of an existing resource (RFC 9110 13.1.1)."""
    if if_match is not None and if_match.strip() == "*":
        return
    if expected_version(if_match) != current:
        raise stale_version()
