"""The dashboard over HTTP: sign-in and its cookie, refused tokens, filters kept in the URL,
the visibility rule on the board, the static files."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
from bali_common.auth import Role
from bali_devkit.broker import free_port
from bali_devkit.testing.plugin import serving
from dashboard_support import (
    FOLLOW_UP_TITLE,
    PUBLIC_TITLE,
    RESTRICTED_TITLE,
    STRATEGY,
    bearer_token,
    browser,
    expired_token,
)
from reporting_testkit import NOW, Reporting, alert, alert_event, publish

COOKIE = "bali_dashboard_token"


async def test_a_page_without_a_token_sends_the_browser_to_sign_in(year_loaded: Reporting) -> None:
    async with browser(year_loaded) as client:
        response = await client.get("/coverage?year=2025")
        assert response.status_code == 303
        target = urlsplit(response.headers["location"])
        assert target.path == "/sign-in"
        assert parse_qs(target.query) == {"reason": ["required"], "next": ["/coverage?year=2025"]}
        page = await client.get(response.headers["location"])
        assert page.status_code == 200
        assert "Sign in with a bearer token" in page.text
        assert 'name="next" value="/coverage?year=2025"' in page.text


async def test_signing_in_keeps_the_token_in_a_strict_http_only_cookie(
    year_loaded: Reporting,
) -> None:
    token = bearer_token(year_loaded.tokens.ops())
    async with browser(year_loaded) as client:
        response = await client.post("/sign-in", data={"token": token, "next": "/activity"})
        assert response.status_code == 303
        assert response.headers["location"] == "/activity"
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}={token};")
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert "Path=/" in cookie
        assert re.search(r"Max-Age=\d+", cookie)
        page = await client.get("/")
        assert page.status_code == 200
        assert PUBLIC_TITLE in page.text
        assert "rso-operations (RSO)" in page.text


async def test_pages_take_an_authorization_header_instead_of_the_cookie(
    year_loaded: Reporting,
) -> None:
    async with browser(year_loaded) as client:
        page = await client.get("/coverage", headers=year_loaded.tokens.ops())
    assert page.status_code == 200
    for item in STRATEGY.items:
        assert f'title="{item.text}"' in page.text or item.text[:40] in page.text


async def test_a_bad_token_is_refused_with_a_clear_message_and_no_cookie(
    year_loaded: Reporting,
) -> None:
    async with browser(year_loaded) as client:
        response = await client.post("/sign-in", data={"token": "not.a.token"})
        assert response.status_code == 401
        assert "That token was not accepted" in response.text
        assert "set-cookie" not in response.headers
        empty = await client.post("/sign-in", data={"token": "  "})
        assert empty.status_code == 401


async def test_an_expired_token_says_it_expired(year_loaded: Reporting) -> None:
    token = expired_token(year_loaded.settings)
    async with browser(year_loaded) as client:
        response = await client.post("/sign-in", data={"token": token})
        assert response.status_code == 401
        assert "That token has expired" in response.text
        client.cookies.set(COOKIE, token)
        page = await client.get("/")
        assert page.status_code == 303
        assert page.headers["location"] == "/sign-in?reason=expired"
        assert f'{COOKIE}=""' in page.headers["set-cookie"]


async def test_a_token_without_a_reader_role_is_refused(year_loaded: Reporting) -> None:
    token = bearer_token(year_loaded.tokens("XX", ()))
    async with browser(year_loaded) as client:
        response = await client.post("/sign-in", data={"token": token})
        assert response.status_code == 403
        assert "carries no role that may read reports" in response.text
        page = await client.get("/", headers={"Authorization": f"Bearer {token}"})
        assert page.status_code == 303
        assert "reason=forbidden" in page.headers["location"]


async def test_a_garbage_cookie_sends_back_to_sign_in_and_is_forgotten(
    year_loaded: Reporting,
) -> None:
    async with browser(year_loaded) as client:
        client.cookies.set(COOKIE, "x" * 9000)
        page = await client.get("/operations")
        assert page.status_code == 303
        assert page.headers["location"].startswith("/sign-in?reason=invalid")
        assert "Max-Age=0" in page.headers["set-cookie"]


async def test_sign_in_never_redirects_to_another_site(year_loaded: Reporting) -> None:
    token = bearer_token(year_loaded.tokens.ops())
    async with browser(year_loaded) as client:
        for target in ("//evil.example/", "https://evil.example/", "/\\evil.example", "x"):
            response = await client.post("/sign-in", data={"token": token, "next": target})
            assert response.headers["location"] == "/", target


async def test_signing_out_forgets_the_cookie(year_loaded: Reporting) -> None:
    async with browser(year_loaded) as client:
        await client.post("/sign-in", data={"token": bearer_token(year_loaded.tokens.ops())})
        assert (await client.get("/")).status_code == 200
        response = await client.post("/sign-out")
        assert response.status_code == 303
        assert "Max-Age=0" in response.headers["set-cookie"]
        assert (await client.get("/")).status_code == 303


async def test_filters_stay_in_the_url_of_every_link_and_form(year_loaded: Reporting) -> None:
    query = (
        "year=2025&area=4&member=TH&severity=Extreme&date_from=2025-01-01&date_to=2025-12-31"
        "&open=true"
    )
    async with browser(year_loaded) as client:
        page = await client.get(f"/?{query}", headers=year_loaded.tokens.ops())
    assert page.status_code == 200
    shared = query.replace("&", "&amp;")
    for path in ("/coverage", "/activity", "/operations"):
        assert f'href="{path}?{shared}"' in page.text
    assert f'data-stream="/dashboard/board-events?{shared}&amp;since=' in page.text
    assert '<option value="4" selected>' in page.text
    assert "<option selected>Extreme</option>" in page.text
    assert 'name="member" value="TH"' in page.text
    assert 'value="2025-01-01"' in page.text
    assert 'name="open" value="true" checked' in page.text


async def test_the_open_filter_leaves_closed_alerts_off_the_board(year_loaded: Reporting) -> None:
    async with browser(year_loaded) as client:
        every = await client.get("/", headers=year_loaded.tokens.co_chair("AU"))
        still_open = await client.get("/?open=true", headers=year_loaded.tokens.co_chair("AU"))
        bad = await client.get("/?open=maybe", headers=year_loaded.tokens.co_chair("AU"))
    assert RESTRICTED_TITLE in every.text
    assert RESTRICTED_TITLE not in still_open.text
    assert PUBLIC_TITLE in still_open.text
    assert bad.status_code == 422
    assert [e["field"] for e in bad.json()["errors"]] == ["query.open"]


async def test_a_bad_filter_is_a_problem_naming_the_field(year_loaded: Reporting) -> None:
    async with browser(year_loaded) as client:
        for query, field in (
            ("year=1900", "query.year"),
            ("area=99", "query.area"),
            ("date_from=2025-02-30", "query.date_from"),
            ("date_from=2025-03-01&date_to=2025-02-01", "query.date_to"),
            ("severity=Apocalyptic", "query.severity"),
        ):
            response = await client.get(f"/?{query}", headers=year_loaded.tokens.ops())
            assert response.status_code == 422, query
            assert response.headers["content-type"].startswith("application/problem+json")
            assert field in [e["field"] for e in response.json()["errors"]], query


async def test_a_member_board_omits_alerts_restricted_to_others(year_loaded: Reporting) -> None:
    async with browser(year_loaded) as client:
        outsider = await client.get("/", headers=year_loaded.tokens("PH", (Role.member,)))
        named = await client.get("/", headers=year_loaded.tokens("MY", (Role.member,)))
        co_chair = await client.get("/", headers=year_loaded.tokens.co_chair("ID"))
        hidden = await client.get("/alerts/res-1", headers=year_loaded.tokens("PH", (Role.member,)))
        shown = await client.get("/alerts/res-1", headers=year_loaded.tokens("MY", (Role.member,)))
    assert PUBLIC_TITLE in outsider.text
    assert RESTRICTED_TITLE not in outsider.text
    assert RESTRICTED_TITLE in named.text
    assert RESTRICTED_TITLE in co_chair.text
    assert hidden.status_code == 404
    assert RESTRICTED_TITLE not in hidden.text
    assert shown.status_code == 200
    assert FOLLOW_UP_TITLE in shown.text
    assert FOLLOW_UP_TITLE not in hidden.text
    assert "Acknowledged" in shown.text
    assert "Resolved" in shown.text


async def test_operations_pages_are_for_operators_only(year_loaded: Reporting) -> None:
    async with browser(year_loaded) as client:
        member = await client.get("/operations", headers=year_loaded.tokens("PH", (Role.member,)))
        ops = await client.get("/operations", headers=year_loaded.tokens.ops())
    assert member.status_code == 403
    assert "for operations staff" in member.text
    assert ops.status_code == 200
    assert "Response times" in ops.text
    assert "Pipeline health" in ops.text


async def test_every_page_renders_the_demo_shape(year_loaded: Reporting) -> None:
    async with browser(year_loaded) as client:
        activity = await client.get("/activity", headers=year_loaded.tokens.ops())
        coverage = await client.get("/coverage", headers=year_loaded.tokens.ops())
    assert activity.status_code == 200
    assert "officers trained" in activity.text
    for area in STRATEGY.areas:
        assert area.name in activity.text
    assert "Not covered in 2025:</b> items 19, 23" in coverage.text


async def test_static_files_are_served_locally_and_cached_for_long(year_loaded: Reporting) -> None:
    async with browser(year_loaded) as client:
        page = await client.get("/", headers=year_loaded.tokens.ops())
        urls = re.findall(r'(?:href|src)="(/static/[^"]+)"', page.text)
        assert len(urls) == 2
        for url in urls:
            response = await client.get(url.replace("&amp;", "&"))
            assert response.status_code == 200
            assert "max-age=31536000" in response.headers["cache-control"]
        assert (await client.get("/static/nothing.js")).status_code == 404
    assert "http://" not in page.text
    assert "https://" not in page.text


async def test_the_board_stream_sends_a_new_alert_and_holds_no_connection(
    year_loaded: Reporting,
) -> None:
    """Over a real socket, as a browser's EventSource reads it; meanwhile pages still answer
    (SQLite has one connection: the stream must not keep it)."""
    port = free_port()
    headers = year_loaded.tokens.co_chair("AU")
    page = await year_loaded.client.get("/", headers=headers)
    since = re.search(r"since=([0-9a-f]+)", page.text)
    assert since is not None
    base = f"http://127.0.0.1:{port}"
    fresh = alert("live-1", title="Boat sighted off Christmas Island", raised_at=NOW)
    async with (
        serving(year_loaded.app, port),
        httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client,
        client.stream("GET", f"/dashboard/board-events?since={since[1]}") as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()
        assert (await anext(lines)).startswith("retry: ")
        other = await client.get("/coverage")
        assert other.status_code == 200
        await publish(year_loaded.settings, [alert_event(fresh)])
        event: list[str] = []
        async for line in lines:
            if line == "" and event:
                break
            if line and not line.startswith(":"):
                event.append(line)
    assert event[0] == "event: board"
    data = "\n".join(line.removeprefix("data: ") for line in event[1:])
    assert 'data-alert-id="live-1"' in data
    assert "Boat sighted off Christmas Island" in data


async def test_the_progress_report_opens_from_the_dashboard_with_the_cookie(
    year_loaded: Reporting,
) -> None:
    async with browser(year_loaded) as client:
        await client.post("/sign-in", data={"token": bearer_token(year_loaded.tokens.ops())})
        page = await client.get("/alerts/pub-1?year=2025")
        assert 'href="/progress/2025"' in page.text
        assert 'href="/?year=2025"' in page.text
        report = await client.get("/progress/2025")
        pdf = await client.get("/progress/2025?format=pdf")
        bad = await client.get("/progress/1492")
    assert report.status_code == 200
    assert "Bali Process: progress report 2025" in report.text
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    assert bad.status_code == 422
    assert [e["field"] for e in bad.json()["errors"]] == ["path.year"]


async def test_downloads_use_the_cookie_and_the_view_filters(year_loaded: Reporting) -> None:
    async with browser(year_loaded) as client:
        await client.post(
            "/sign-in", data={"token": bearer_token(year_loaded.tokens("PH", (Role.member,)))}
        )
        page = await client.get("/coverage?year=2025&area=4")
        assert 'href="/download/coverage?year=2025&amp;area=4&amp;format=xlsx"' in page.text
        sheet = await client.get("/download/coverage?year=2025&area=4&format=csv")
        board = await client.get("/download/alerts?format=csv")
        workbook = await client.get("/download/indicators?year=2025&format=xlsx")
        bad_format = await client.get("/download/trends?format=pdf")
        bad_report = await client.get("/download/secrets")
    assert sheet.status_code == 200
    assert sheet.headers["content-type"].startswith("text/csv")
    items = {line.split(",")[1] for line in sheet.text.splitlines()[1:]}
    assert items == {str(item.number) for item in STRATEGY.area(4).items}
    assert PUBLIC_TITLE in board.text
    assert RESTRICTED_TITLE not in board.text
    assert workbook.content.startswith(b"PK")
    assert [e["field"] for e in bad_format.json()["errors"]] == ["query.format"]
    assert [e["field"] for e in bad_report.json()["errors"]] == ["path.report"]


async def test_a_sign_in_posted_from_another_site_is_refused(year_loaded: Reporting) -> None:
    token = bearer_token(year_loaded.tokens.ops())
    async with browser(year_loaded) as client:
        foreign = {"Origin": "https://evil.example"}
        response = await client.post("/sign-in", data={"token": token}, headers=foreign)
        assert response.status_code == 403
        assert "set-cookie" not in response.headers
        own = await client.post(
            "/sign-in", data={"token": token}, headers={"Origin": "http://testserver"}
        )
        assert own.status_code == 303
        assert (await client.post("/sign-out", headers=foreign)).status_code == 403
        assert (await client.get("/")).status_code == 200
