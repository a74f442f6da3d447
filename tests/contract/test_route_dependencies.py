"""Every route of every service, and every dependency it declares, runs on the event loop.

FastAPI runs a plain `def` endpoint or dependency in its thread pool: a hand-off to a worker
thread and back on every request, for values that take microseconds to compute (filters,
settings, the clock). Blocking work belongs in the use case, handed off there on purpose.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from contract_support import SERVICES
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts


def _dependants(dependant: Dependant) -> list[Dependant]:
    found = [dependant]
    for sub in dependant.dependencies:
        found.extend(_dependants(sub))
    return found


def _runs_on_the_loop(call: Callable[..., Any]) -> bool:
    for candidate in (call, getattr(call, "__call__", None)):  # noqa: B004 - instances too
        if inspect.iscoroutinefunction(candidate) or inspect.isasyncgenfunction(candidate):
            return True
    return False


def _name(call: Callable[..., Any]) -> str:
    return f"{getattr(call, '__module__', '?')}.{getattr(call, '__qualname__', repr(call))}"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_no_route_hands_a_request_to_the_thread_pool(name: str, tmp_path: Path) -> None:
    service = SERVICES[name]
    # Built, not started: the routes and their dependencies are all there is to read.
    app = service.create_app(
        service.settings(data_dir=tmp_path, kafka_bootstrap_servers="127.0.0.1:9")
    )
    checked: set[str] = set()
    in_thread_pool: set[str] = set()
    for route in iter_route_contexts(app.routes):
        dependant = getattr(route, "dependant", None)
        if dependant is None:
            continue
        for each in _dependants(dependant):
            if each.call is None:
                continue
            checked.add(_name(each.call))
            if not _runs_on_the_loop(each.call):
                in_thread_pool.add(f"{_name(each.call)} (on {getattr(route, 'path', '?')})")
    assert len(checked) > 10, f"{name}: only {sorted(checked)} were found to check"
    assert not in_thread_pool, f"{name}: run in the thread pool: {sorted(in_thread_pool)}"
