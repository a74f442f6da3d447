"""The OpenAPI document is complete: every route summarised, secured, with examples and problems."""

from __future__ import annotations

from typing import Any

from activities_testkit import Service
from fastapi.routing import iter_route_contexts

SERVICE_TAGS = {"members", "activities"}


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = spec["components"]["schemas"][name]
    return schema


def _has_example(spec: dict[str, Any], content: dict[str, Any]) -> bool:
    if "example" in content or "examples" in content:
        return True
    return "examples" in _resolve(spec, content.get("schema", {}))


async def test_every_route_is_documented_with_examples(service: Service) -> None:
    response = await service.client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    operations = [
        (path, method, operation)
        for path, methods in spec["paths"].items()
        for method, operation in methods.items()
        if SERVICE_TAGS & set(operation.get("tags", []))
    ]
    assert len(operations) == 16
    for path, method, operation in operations:
        where = f"{method.upper()} {path}"
        assert operation.get("summary"), where
        assert operation.get("security"), f"{where} has no auth"
        assert {"401", "403", "422"} <= set(operation["responses"]), where
        for problem in ("401", "403"):
            content = operation["responses"][problem]["content"]
            assert "Problem" in str(content), where
        body = operation.get("requestBody", {}).get("content", {})
        for media_type, content in body.items():
            assert _has_example(spec, content), f"{where} {media_type} request has no example"
        successes = [s for s in operation["responses"] if s.startswith("2")]
        assert successes, where
        for status in successes:
            for media_type, content in operation["responses"][status]["content"].items():
                if media_type.endswith("sheet"):
                    continue
                assert _has_example(spec, content), f"{where} {status} {media_type} has no example"
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                assert "examples" in parameter["schema"], (where, parameter)


async def test_every_route_has_an_explicit_auth_dependency(service: Service) -> None:
    # The routes as included (FastAPI keeps included routers apart in `app.routes`).
    checked = 0
    for route in iter_route_contexts(service.app.routes):
        if not (route.path or "").startswith("/v1/"):
            continue
        names = {
            getattr(dependency.call, "__name__", "") for dependency in route.dependant.dependencies
        }
        assert any(name.startswith("require_") for name in names), route.path
        checked += 1
    assert checked >= 16


async def test_undeclared_methods_are_refused(service: Service) -> None:
    put = await service.client.put("/v1/activities", headers=service.tokens.admin())
    assert put.status_code == 405
    assert put.headers["content-type"] == "application/problem+json"
