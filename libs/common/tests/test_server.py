"""`serve`: the server process every service runs in, started for real on a port."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
from bali_devkit.broker import free_port

APP = textwrap.dedent(
    """
    import gc, sys
    from fastapi import FastAPI
    from bali_common.server import serve
    from bali_common.settings import CommonSettings

    app = FastAPI()

    @app.get("/frozen")
    async def frozen() -> dict[str, int]:
        return {"frozen": gc.get_freeze_count()}

    serve(app, CommonSettings(data_dir=sys.argv[1], port=int(sys.argv[2]), host="127.0.0.1"))
    """
)


def test_what_startup_built_is_kept_out_of_garbage_collection(tmp_path: Path) -> None:
    """A full collection in a running service walks only what requests created since."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", APP, str(tmp_path), str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "BALI_LOG_LEVEL": "info"},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/frozen", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, "the server exited"
                assert time.monotonic() < deadline, "the server did not answer"
                time.sleep(0.1)
        assert answer.json()["frozen"] > 10_000
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=15)
    assert "objects kept out of garbage collection" in output
