"""The dashboard's first render in headless Chromium with a full year loaded.

One embedded broker; the same events as `bench/reporting.py` (by default 50,000
activities with status changes, 2,000 alerts through their lifecycle, deliveries and the
member directory) published as the services would publish them, applied by the live
reporting consumer, then the service served on a real socket. Debian's Chromium (driven
by Playwright, never a downloaded browser) signs in once as a co-chair (who sees every
alert), then opens each page in a fresh browser context (cold: no cache, the CSS and
script fetched too) and again in the same context (warm). From the browser's Navigation
Timing: time to first byte, DOMContentLoaded, load and first contentful paint.

Run: `uv run --frozen python bench/dashboard.py` (see bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from bali_common.auth import Role, issue_dev_token
from bali_common.messaging.kafka import ensure_topics
from bali_common.migrations import upgrade
from bali_devkit.broker import EmbeddedBroker, free_port
from bali_devkit.testing.browser import CHROMIUM, CHROMIUM_ARGS
from bali_devkit.testing.plugin import serving
from bali_reporting import migrations
from bali_reporting.app import create_app
from playwright.async_api import Browser, async_playwright
from playwright.async_api import Error as PlaywrightError
from reporting import activities, alert_lifecycles, bench_settings, directory, publish
from support import load_average, machine

PAINTED = "performance.getEntriesByName('first-contentful-paint').length > 0"
PAGES = ["/", "/coverage", "/activity", "/operations"]
TIMING = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const paint = performance.getEntriesByName("first-contentful-paint")[0];
  return {
    ttfb: nav.responseStart - nav.startTime,
    dom: nav.domContentLoadedEventEnd - nav.startTime,
    load: nav.loadEventEnd - nav.startTime,
    fcp: paint ? paint.startTime : NaN,
    bytes: nav.transferSize,
  };
}"""


async def caught_up(base: str, headers: dict[str, str], total: int) -> float:
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        while True:
            counts = await client.get("/v1/pipeline/event-counts", headers=headers)
            if counts.json()["total"] >= total:
                return time.perf_counter() - started
            await asyncio.sleep(1)


async def time_progress(base: str, token: str, year: int, runs: int) -> dict[str, list[float]]:
    """The year's progress report through the API, as HTML and as PDF (ms per answer)."""
    timings: dict[str, list[float]] = {"html": [], "pdf": []}
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as client:
        for file_format, spent in timings.items():
            for _ in range(runs):
                started = time.perf_counter()
                response = await client.get(
                    f"/v1/reports/progress/{year}", params={"format": file_format}
                )
                response.raise_for_status()
                spent.append((time.perf_counter() - started) * 1000)
            print(f"progress {file_format}: {len(response.content):,} bytes", flush=True)
    return timings


async def open_page(browser: Browser, base: str, token: str, path: str, *, warm: bool) -> Any:
    context = await browser.new_context(viewport={"width": 1366, "height": 768})
    await context.add_cookies(
        [{"name": "bali_dashboard_token", "value": token, "url": base, "sameSite": "Strict"}]
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        await page.goto(f"{base}{path}", wait_until="load")
        if warm:
            await page.goto(f"{base}{path}", wait_until="load")
        with contextlib.suppress(PlaywrightError):
            await page.wait_for_function(PAINTED, timeout=5000)
        timing = await page.evaluate(TIMING)
        timing["rows"] = await page.locator("tr").count()
        timing["errors"] = errors
        return timing
    finally:
        await context.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--activities", type=int, default=50_000)
    parser.add_argument("--alerts", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    now = datetime.now(UTC)
    events = [
        *directory(),
        *activities(args.activities, args.alerts, rng, now.date()),
        *alert_lifecycles(args.alerts, rng, now),
    ]
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as workdir:
        settings = bench_settings(Path(workdir), broker)
        await ensure_topics(settings)
        await upgrade(settings.resolved_database_url(), migrations.DIRECTORY, quiet=True)
        published_s = await publish(settings, events)
        print(f"published {len(events):,} events in {published_s:.1f}s", flush=True)
        app = create_app(settings)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        admin = {
            "Authorization": "Bearer "
            + issue_dev_token(settings, subject="bench", member_id=None, roles=[Role.admin])
        }
        token = issue_dev_token(
            settings, subject="bench-co-chair", member_id="M00", roles=[Role.co_chair]
        )
        results: dict[tuple[str, bool], list[dict[str, Any]]] = {}
        documents: dict[str, list[float]] = {}
        async with app.router.lifespan_context(app), serving(app, port):
            applied_s = await caught_up(base, admin, len(events))
            print(f"live consumer applied them in {applied_s:.0f}s", flush=True)
            documents = await time_progress(base, token, now.year, args.runs)
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
                )
                try:
                    for path in PAGES:
                        await open_page(browser, base, token, path, warm=False)  # one to warm up
                        for warm in (False, True):
                            results[(path, warm)] = [
                                await open_page(browser, base, token, path, warm=warm)
                                for _ in range(args.runs)
                            ]
                finally:
                    await browser.close()
    print(f"\n{machine()}, load average {load_average()}")
    size = f"{args.activities:,} activities, {args.alerts:,} alerts ({len(events):,} events)"
    print(f"{size}, SQLite")
    print(f"Chromium {CHROMIUM}, {args.runs} runs per page, medians (max) in ms\n")
    print("| page | cache | first byte | DOMContentLoaded | load | first paint | rows | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for (path, warm), runs in results.items():

        def cell(key: str, runs: list[dict[str, Any]] = runs) -> str:
            values = [r[key] for r in runs if not math.isnan(r[key])]
            if not values:
                return "-"
            return f"{statistics.median(values):.0f} ({max(values):.0f})"

        errors = sum(len(r["errors"]) for r in runs)
        print(
            f"| {path} | {'warm' if warm else 'cold'} | {cell('ttfb')} | {cell('dom')} | "
            f"{cell('load')} | {cell('fcp')} | {runs[0]['rows']} | {errors} |"
        )
    print("\n| progress report | median ms | max ms |\n|---|---|---|")
    for file_format, spent in documents.items():
        print(f"| {file_format} | {statistics.median(spent):.0f} | {max(spent):.0f} |")


if __name__ == "__main__":
    asyncio.run(main())
