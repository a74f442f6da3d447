"""Every route of every service, called by every kind of caller: each route declares who may
call it, and no caller it does not allow gets a 2xx (OWASP API5, broken function level
authorization); nobody gets a 500."""

from __future__ import annotations

from bali_common.auth import Role
from security_support import Deployed, call, request_kwargs, routes

ROLE_OF = {"member": Role.member, "co_chair": Role.co_chair, "ops": Role.ops}


async def test_every_route_declares_its_authorization(service: Deployed) -> None:
    undeclared = [r.label for r in routes(service.app) if r.authorization() is None]
    assert not undeclared, f"routes without an explicit authorization dependency: {undeclared}"


async def test_no_caller_gets_past_a_route_that_does_not_allow_it(service: Deployed) -> None:
    breaches: list[str] = []
    checked = 0
    for route in routes(service.app):
        rule = route.authorization()
        for caller, headers in service.callers().items():
            response = await call(
                service, route, **request_kwargs(service, route, service.private, headers)
            )
            where = f"{route.label} as {caller}: {response.status_code}"
            assert response.status_code < 500, f"{where} {response.text}"
            if isinstance(rule, str) or rule is None:
                continue  # public: what authorises it is the route's own business
            allowed = caller == "admin" or (caller in ROLE_OF and ROLE_OF[caller] in rule)
            if allowed:
                continue
            checked += 1
            expected = 401 if caller in ("no token", "bad token") else 403
            if response.status_code != expected:
                breaches.append(f"{where}, expected {expected}")
    assert checked, "no refusal was exercised"
    assert not breaches, "\n".join(breaches)
