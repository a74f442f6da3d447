"""Another member's private object answers exactly like a missing one, on every id-bearing
route (OWASP API1, broken object level authorization): no existence is revealed."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from bali_common.auth import Role
from security_support import OUTSIDER, OWNER, Deployed, request_kwargs, routes

#: Routes whose objects every member may read by design, with the reason.
READABLE_BY_EVERY_MEMBER = {
    "GET /v1/members/{member_id}": "the member directory is every member's reference",
    "GET /v1/reports/progress/{year}": (
        "a year is no member's object: every reader gets the report, its alerts as the "
        "visibility rule lets them see"
    ),
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


#: Callers of other members: a plain user, and a co_chair role of a member the directory
#: does not list as co-chair (the role alone opens nothing).
OUTSIDERS = {
    "member": (OUTSIDER, Role.member),
    "co_chair of a non-co-chair member": ("NZ", Role.co_chair),
}


@pytest.mark.parametrize("outsider_kind", sorted(OUTSIDERS))
async def test_another_members_object_answers_like_a_missing_one(
    service: Deployed, outsider_kind: str
) -> None:
    member, role = OUTSIDERS[outsider_kind]
    outsider = service.tokens(member, (role,))
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
    member_routes = [r for r in id_routes if _admits(r.authorization(), role)]
    if member_routes:
        assert not_found, "no route reached its object lookup"
    else:
        # Only operations' objects (rebuild runs, dead letters): a member never gets that far.
        assert refused == len(id_routes)


def _admits(rule: frozenset[Role] | str | None, role: Role) -> bool:
    return isinstance(rule, str) or (rule is not None and role in rule)


#: Ids of objects only their owner may see (the directory's ids are everyone's).
PRIVATE_KINDS = ("activity_id", "alert_id", "subscription_id", "delivery_id", "item_id")


def ids_in(document: Any) -> set[str]:
    """Every value of an `id` or `..._id` key anywhere in a JSON document."""
    found: set[str] = set()
    if isinstance(document, dict):
        for key, value in document.items():
            if (key == "id" or key.endswith("_id")) and isinstance(value, str | int):
                found.add(str(value))
            found |= ids_in(value)
    elif isinstance(document, list):
        for item in document:
            found |= ids_in(item)
    return found


async def test_lists_filtered_on_another_members_objects_show_none_of_them(
    service: Deployed,
) -> None:
    """Listings asked for the owner's member, ids and deleted rows show the outsider nothing
    of them (a list is an object read too)."""
    outsider = service.callers()["member"]
    owner = service.tokens(OWNER, (Role.member,))
    secrets = {service.private[k] for k in PRIVATE_KINDS if k in service.private}
    listed = 0
    shown_to_owner: set[str] = set()
    for route in routes(service.app):
        if route.method != "get" or route.path_params or route.path.endswith("/stream"):
            continue
        operation = service.spec["paths"][route.path]["get"]
        params: dict[str, str] = {}
        for parameter in operation.get("parameters", []):
            name, schema = parameter["name"], parameter.get("schema", {})
            if parameter["in"] != "query":
                continue
            if name in service.private and name in PRIVATE_KINDS:
                params[name] = service.private[name]
            elif name in ("member", "member_id", "raised_by", "lead_member"):
                params[name] = OWNER
            elif schema.get("type") == "boolean" and name.startswith("include"):
                params[name] = "true"
        response = await service.client.get(route.path, params=params, headers=outsider)
        if response.status_code != 200 or "json" not in response.headers["content-type"]:
            continue
        leaked = ids_in(response.json()) & secrets
        assert not leaked, f"{route.label} {params} shows {leaked}"
        listed += 1
        mine = await service.client.get(route.path, params=params, headers=owner)
        if mine.status_code == 200 and "json" in mine.headers["content-type"]:
            shown_to_owner |= ids_in(mine.json()) & secrets
    assert listed
    # The same listings do show the owner its objects: the outsider's were really asked.
    assert shown_to_owner or not secrets
