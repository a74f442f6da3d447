"""Client of the rebuild route: request a rebuild, then follow its progress until it ends.

Used by `python -m bali_reporting rebuild` (what the images carry) and by the
developer's `bali reporting rebuild`, which adds a progress bar and a dev token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from bali_reporting.rebuild.models import FINISHED, RebuildStatus

ROUTE = "/v1/admin/rebuild"


class RebuildRefused(RuntimeError):
    """The service answered the request with a problem (no admin token, one already runs...)."""


async def run_rebuild(
    base_url: str,
    token: str,
    *,
    on_progress: Callable[[RebuildStatus], object],
    interval_s: float = 0.5,
    timeout_s: float = 10.0,
) -> RebuildStatus:
    """Request a rebuild and poll its progress resource until it is done, failed or abandoned."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout_s) as client:
        response = await client.post(ROUTE)
        if response.status_code != 202:
            raise RebuildRefused(f"{response.status_code}: {_detail(response)}")
        status = RebuildStatus.model_validate(response.json())
        location = response.headers.get("location", f"{ROUTE}/{status.id}")
        on_progress(status)
        while status.state not in FINISHED:
            await asyncio.sleep(interval_s)
            polled = await client.get(location)
            if polled.status_code != 200:
                raise RebuildRefused(f"{polled.status_code}: {_detail(polled)}")
            status = RebuildStatus.model_validate(polled.json())
            on_progress(status)
        return status


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("detail") or body.get("title") or body)


def describe(status: RebuildStatus) -> str:
    """One progress line: state, events read of the target, events per second."""
    target = f"/{status.events_target}" if status.events_target is not None else ""
    rate = f", {status.events_per_second:,.0f} events/s" if status.events_per_second else ""
    line = f"{status.state.value}: {status.events_read}{target} events read{rate}"
    if status.error:
        line += f" ({status.error})"
    return line
