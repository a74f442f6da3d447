"""Runs one service under uvicorn with uvloop and httptools (measured: about 2x asyncio)."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from fastapi import FastAPI

from bali_common.settings import CommonSettings


def serve(app: FastAPI, settings: CommonSettings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format=f"%(asctime)s %(levelname)s [{settings.service_name}] %(name)s: %(message)s",
    )
    freeze_after_startup(app)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_level=settings.log_level.lower(),
        access_log=False,
        # The client address (rate limits, audit trail) from X-Forwarded-For of these proxies.
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_graceful_shutdown=10,
    )


def freeze_after_startup(app: FastAPI) -> None:
    """Once the service has started, move every object that exists then (modules, models,
    schemas, compiled statements, caches: about 180,000 of them) out of the garbage
    collector's reach.

    They live as long as the process, yet each full collection walked them all: measured
    under `POST /v1/activities` load, a full collection paused the event loop for 130-400 ms,
    and every request in flight with it; after the freeze, 5-6 ms (`bench/RESULTS.md`). Only
    the server process does this (and a benchmark that runs a service in its own process,
    as the server would): a test process starts many apps, and cyclic garbage of a frozen
    one would never be collected.
    """
    started = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        async with started(application) as state:
            gc.collect()
            gc.freeze()
            logging.getLogger(__name__).info(
                "started: %d objects kept out of garbage collection", gc.get_freeze_count()
            )
            yield state

    app.router.lifespan_context = lifespan
