"""Another member's private object answers exactly like a missing one, on every id-bearing
route (OWASP API1, broken object level authorization): no existence is revealed."""

from __future__ import annotations

import httpx
from security_support import Deployed, request_kwargs, routes

#: Routes whose objects every member may read by design, with the reason.
READABLE_BY_EVERY_MEMBER = {
    "GET /v1/members/{member_id}": "the member directory is every member's reference",
}


def answer(response: httpx.Response) -> tuple[int, str | None]:
    kind = response.headers.get("content-type", "")
    problem = response.json().get("type") if kind == "application/problem+json" else None
    return response.status_code, problem


async def test_another_members_object_answers_like_a_missing_one(service: Deployed) -> None:
    outsider = service.callers()["member"]
    differing: list[str] = []
    not_found = 0
    for route in routes(service.app):
        if not route.path_params or route.label in READABLE_BY_EVERY_MEMBER:
            continue
        hidden = await service.client.request(
            **request_kwargs(service, route, service.private, outsider)
        )
        absent = await service.client.request(
            **request_kwargs(service, route, service.missing, outsider)
        )
        if answer(hidden) != answer(absent):
            differing.append(f"{route.label}: {answer(hidden)} for the object, {answer(absent)}")
        not_found += hidden.status_code == 404
    assert not differing, "\n".join(differing)
    assert not_found, "no route reached its object lookup"
