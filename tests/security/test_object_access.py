"""Another member's private object answers exactly like a missing one, on every id-bearing
route (OWASP API1, broken object level authorization): no existence is revealed."""

from __future__ import annotations

import re
from typing import Any

import httpx
from bali_common.auth import Role
from security_support import Deployed, request_kwargs, routes

#: Routes whose objects every member may read by design, with the reason.
READABLE_BY_EVERY_MEMBER = {
    "GET /v1/members/{member_id}": "the member directory is every member's reference",
}


def answer(response: httpx.Response, ids: dict[str, str]) -> tuple[Any, ...]:
    """Status, media type and the body's shape, with the ids asked for written as `{id}`."""
    kind = response.headers.get("content-type", "")
    if "json" not in kind:
        return response.status_code, kind, response.text
    body = response.json()
    if not isinstance(body, dict):
        return response.status_code, kind, type(body).__name__
    text = {key: str(value) for key, value in body.items()}
    for value in sorted(ids.values(), key=len, reverse=True):
        whole = re.compile(rf"(?<![\w-]){re.escape(value)}(?![\w-])")
        text = {key: whole.sub("{id}", item) for key, item in text.items()}
    return response.status_code, kind, sorted(text.items())


async def test_another_members_object_answers_like_a_missing_one(service: Deployed) -> None:
    outsider = service.callers()["member"]
    differing: list[str] = []
    not_found = refused = 0
    id_routes = [
        r for r in routes(service.app) if r.path_params and r.label not in READABLE_BY_EVERY_MEMBER
    ]
    assert id_routes
    for route in id_routes:
        hidden = await service.client.request(
            **request_kwargs(service, route, service.private, outsider)
        )
        absent = await service.client.request(
            **request_kwargs(service, route, service.missing, outsider)
        )
        seen = answer(hidden, service.private)
        if seen != answer(absent, service.missing):
            differing.append(
                f"{route.label}: {seen} for the object, {answer(absent, service.missing)}"
            )
        not_found += hidden.status_code == 404
        refused += hidden.status_code == 403
    assert not differing, "\n".join(differing)
    member_routes = [r for r in id_routes if _admits_members(r.authorization())]
    if member_routes:
        assert not_found, "no route reached its object lookup"
    else:
        # Only operations' objects (rebuild runs, dead letters): a member never gets that far.
        assert refused == len(id_routes)


def _admits_members(rule: frozenset[Role] | str | None) -> bool:
    return isinstance(rule, str) or (rule is not None and Role.member in rule)
