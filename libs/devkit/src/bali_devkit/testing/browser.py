"""The system's Chromium for the dashboard's browser tests and bench: Debian's `chromium`
package driven by Playwright, never a browser Playwright downloads (machines here reach no
browser download site, and CI installs the package with apt)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
#: Headless, and quiet: no first-run pages, no background downloads or sync.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    if CHROMIUM.exists():
        return str(CHROMIUM)
    return shutil.which("chromium")


def require_chromium() -> str:
    """The browser's path; skips the test, saying why, where it is not installed."""
    found = chromium_path()
    if found is None:
        pytest.skip(f"needs Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)")
    return found
