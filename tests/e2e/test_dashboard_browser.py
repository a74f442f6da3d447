"""The dashboard in real headless Chromium (Debian's package, driven by Playwright), on the
demo year: it loads without console errors and shows the demo data, a new alert appears on
the board without a reload, and a member's board omits an alert restricted to others."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from bali_common.auth import Role
from bali_devkit.testing.browser import CHROMIUM_ARGS, require_chromium
from bali_devkit.testing.plugin import settings_factory_for
from dashboard_browser_support import DemoPlatform, demo_platform

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: Only the browser is bounded here: the wait for the live board, not a speed claim.
LIVE_WAIT_MS = 60_000


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def platform(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[DemoPlatform]:
    require_chromium()  # before the demo year is loaded for nothing
    directory = tmp_path_factory.mktemp("dashboard-browser")
    async with (
        settings_factory_for(kafka_bootstrap, directory) as settings_for,
        demo_platform(settings_for) as running_platform,
    ):
        yield running_platform


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def browser(platform: DemoPlatform) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=require_chromium(), args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


class Tab:
    """A signed-in browser tab that records every console error, page error and failed load."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on(
            "console",
            lambda message: (
                self.errors.append(f"console: {message.text}") if message.type == "error" else None
            ),
        )
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        page.on(
            "requestfailed",
            lambda request: (
                self.errors.append(f"failed: {request.url} {request.failure}")
                if "board-events" not in request.url
                else None
            ),
        )
        page.on(
            "response",
            lambda response: (
                self.errors.append(f"{response.status}: {response.url}")
                if response.status >= 400
                else None
            ),
        )


async def signed_in(browser: Any, platform: DemoPlatform, headers: dict[str, str]) -> Tab:
    """Through the real sign-in form, as a person pastes a token."""
    context = await browser.new_context(viewport={"width": 1366, "height": 768})
    tab = Tab(await context.new_page())
    page = tab.page
    await page.goto(f"{platform.dashboard}/")
    assert page.url.startswith(f"{platform.dashboard}/sign-in")
    await page.fill("#token", headers["Authorization"].removeprefix("Bearer "))
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{platform.dashboard}/")
    cookies = await context.cookies()
    session = next(c for c in cookies if c["name"] == "bali_dashboard_token")
    assert session["httpOnly"]
    assert session["sameSite"] == "Strict"
    return tab


async def follow(page: Any, link: str) -> None:
    """Follow a navigation link; the filters travel in its query string."""
    target = page.get_by_role("navigation").get_by_role("link", name=link, exact=True)
    href = await target.get_attribute("href")
    async with page.expect_navigation():
        await target.click()
    assert page.url.endswith(href), (page.url, href)


async def close(tab: Tab) -> None:
    await tab.page.context.close()


async def test_the_dashboard_loads_without_console_errors_and_shows_the_demo(
    browser: Any, platform: DemoPlatform
) -> None:
    board = await platform.board(platform.tokens.ops())
    public = [a["title"] for a in board["items"] if a["sensitivity"] == "public"]
    assert len(public) >= 10
    tab = await signed_in(browser, platform, platform.tokens.ops())
    page = tab.page
    try:
        rows = page.locator("#board tr.alert-row")
        assert await rows.count() == len(board["items"])
        for title in public:
            assert await page.get_by_role("link", name=title, exact=True).count() == 1
        assert await page.locator(".sev", has_text="Extreme").count() > 0
        assert await page.locator("time.age").count() > 0
        areas = page.locator("table.heat tbody tr")
        assert await areas.count() == 8

        # Keyboard only: the first alert's link is reachable and opens its timeline.
        first = page.locator("#board tr.alert-row a").first
        await first.focus()
        await page.keyboard.press("Enter")
        await page.wait_for_url(re.compile(r"/alerts/"))
        assert await page.locator("ol.timeline li").count() >= 2
        await page.go_back()

        await follow(page, "Coverage")
        heat = page.locator("table.heat").first
        assert await heat.locator("tbody tr").count() == 25
        assert await page.locator("tr.uncovered").count() >= 2
        assert "items 19, 23" in await page.inner_text(".notice")

        await follow(page, "Activity")
        assert await page.locator("figure.trend svg").count() == 8
        assert await page.locator("table.bars tbody tr").count() > 0

        await follow(page, "Operations")
        assert await page.locator("text=Response times").count() > 0
        assert await page.locator("text=Pipeline health").count() > 0
        assert tab.errors == []
    finally:
        await close(tab)


async def test_a_newly_raised_alert_appears_on_the_board_without_a_reload(
    browser: Any, platform: DemoPlatform
) -> None:
    tab = await signed_in(browser, platform, platform.tokens.co_chair("AU"))
    page = tab.page
    try:
        await page.evaluate("window.loadedOnce = true")
        await page.wait_for_function("document.getElementById('live-state').textContent === 'live'")
        title = "Boat with 73 people sighted near Ashmore Reef"
        alert_id = await platform.raise_alert(title)
        row = page.locator(f'tr[data-alert-id="{alert_id}"]')
        await row.wait_for(state="visible", timeout=LIVE_WAIT_MS)
        assert title in await row.inner_text()
        assert await page.evaluate("window.loadedOnce") is True
        # Its age ticks by itself (seconds while it is young).
        age = row.locator("time.age")
        first_age = await age.inner_text()
        await page.wait_for_function(
            "([el, before]) => el.textContent !== before",
            arg=[await age.element_handle(), first_age],
            timeout=LIVE_WAIT_MS,
        )
        await row.locator("td").nth(2).click()
        await page.wait_for_url(f"{platform.dashboard}/alerts/{alert_id}")
        assert await page.locator("h1", has_text=title).count() == 1
        assert tab.errors == []
    finally:
        await close(tab)


async def test_a_member_board_omits_an_alert_restricted_to_others(
    browser: Any, platform: DemoPlatform
) -> None:
    board = await platform.board()
    restricted = [a for a in board["items"] if a["sensitivity"] == "restricted"]
    assert len(restricted) == 1
    hidden = restricted[0]
    named = {hidden["raised_by"]["member_id"]} | {
        m["member_id"] for m in hidden["affected_members"]
    }
    outsider = next(m for m in ("NZ", "PH", "VN", "LK", "TH", "MY") if m not in named)
    tab = await signed_in(browser, platform, platform.tokens(outsider, (Role.member,)))
    try:
        page = tab.page
        assert await page.locator("#board tr.alert-row").count() == len(board["items"]) - 1
        assert await page.get_by_text(hidden["title"]).count() == 0
        await page.goto(f"{platform.dashboard}/alerts/{hidden['alert_id']}")
        assert await page.locator("h1", has_text="Alert not found").count() == 1
        assert await page.get_by_text(hidden["title"]).count() == 0
    finally:
        await close(tab)
    tab = await signed_in(browser, platform, platform.tokens(hidden["raised_by"]["member_id"]))
    try:
        assert await tab.page.get_by_text(hidden["title"]).count() == 1
        assert tab.errors == []
    finally:
        await close(tab)
