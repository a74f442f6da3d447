"""The HTTP adapters: which routes need a bearer token, and bodies that may be omitted."""

from __future__ import annotations

from consultation_testkit import Service

#: Routes that answer without a bearer token, and what authorises them instead.
PUBLIC_ROUTES = {
    ("get", "/healthz"): "health",
    ("get", "/readyz"): "health",
    ("get", "/v1/alerts/feed.atom"): "public alerts only",
    ("get", "/v1/alerts/{alert_id}/acknowledge"): "the signed link token",
}


async def test_every_route_declares_bearer_auth_except_the_explicitly_public_ones(
    service: Service,
) -> None:
    spec = (await service.client.get("/openapi.json")).json()
    unauthenticated = {
        (method, path)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if "security" not in operation
    }
    assert unauthenticated == set(PUBLIC_ROUTES)


async def test_withdraw_and_reopen_accept_a_request_without_body(service: Service) -> None:
    alert = await service.raise_alert("MY")
    url = f"/v1/alerts/{alert['id']}"
    withdrawn = await service.client.post(f"{url}/withdraw", headers=service.auth("MY"))
    assert withdrawn.status_code == 200, withdrawn.text
    reopened = await service.client.post(f"{url}/reopen", headers=service.auth("MY"))
    assert reopened.status_code == 200, reopened.text
    escalated = await service.client.post(f"{url}/escalate", headers=service.auth.co_chair())
    assert escalated.json()["escalation_level"] == 1
