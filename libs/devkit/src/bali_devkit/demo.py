"""Demo data for `bali demo` and `bali up --demo`: a realistic year, loaded through the public APIs.

Request bodies start from the APIs' own OpenAPI examples (read from the running
services) and vary deterministically from a seed: many members' activities across
the strategy items with outputs broken down by sex and age, status changes, deletions
and a restore; alerts in every state (one restricted) driven by co-chair tokens; and
activities that follow up alerts. Every call carries a dev token of the member that
makes it, and an Idempotency-Key, so running it again on the same day adds nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from bali_common.auth import Role, issue_dev_token
from bali_common.settings import CommonSettings

from bali_devkit.demo_content import (
    AGE_GROUPS,
    ALERT_PATHS,
    KIND_TITLES,
    OUTPUTS,
    RESTRICTED,
    SITUATIONS,
    THEMES,
)

Say = Callable[[str, str], None]

#: Items left without a planned, ongoing or completed activity this year, so the coverage
#: picture shows what stands out when no one covers an item.
UNCOVERED_ITEMS = (19, 23)
_ACTIVITY_COUNT = 240
_PARALLEL = 8


def request_example(
    openapi: Mapping[str, Any], path: str, method: str, index: int = 0
) -> dict[str, Any]:
    """The `index`th example of an operation's JSON request body, from an OpenAPI document."""
    operation = openapi["paths"][path][method]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    for option in schema.get("anyOf", [schema]):
        if "$ref" in option:
            component = openapi["components"]["schemas"][option["$ref"].rsplit("/", 1)[1]]
            return copy.deepcopy(component["examples"][index])
    raise KeyError(f"{method.upper()} {path} has no documented request example")


def schema_enum(openapi: Mapping[str, Any], name: str) -> list[str]:
    return list(openapi["components"]["schemas"][name]["enum"])


@dataclass
class DemoSummary:
    activities: int = 0
    changes: int = 0
    deleted: int = 0
    restored: int = 0
    alerts: dict[str, int] = field(default_factory=dict)
    follow_ups: int = 0
    failures: list[str] = field(default_factory=list)


@dataclass
class _Demo:
    settings: CommonSettings
    client: httpx.AsyncClient
    urls: Mapping[str, str]
    rng: random.Random
    key: str
    today: date
    summary: DemoSummary = field(default_factory=DemoSummary)

    def headers(
        self, member: str | None, role: Role = Role.member, key: str | None = None
    ) -> dict[str, str]:
        token = issue_dev_token(
            self.settings,
            subject=f"demo-{(member or 'admin').lower()}-{role.value}",
            member_id=member,
            roles=[role],
        )
        headers = {"Authorization": f"Bearer {token}"}
        if key is not None:
            headers["Idempotency-Key"] = f"{self.key}-{key}"
        return headers

    async def call(
        self, method: str, url: str, *, ok: tuple[int, ...], **kwargs: Any
    ) -> httpx.Response | None:
        """A call that may already have been made by an earlier run (409/412): not a failure."""
        response = await self.client.request(method, url, **kwargs)
        if response.status_code in ok:
            return response
        if response.status_code not in (409, 412):
            self.summary.failures.append(
                f"{method} {url}: {response.status_code} {response.text[:200]}"
            )
        return None


async def load_demo(
    settings: CommonSettings,
    urls: Mapping[str, str],
    say: Say,
    *,
    seed: int = 2023,
    activities: int = _ACTIVITY_COUNT,
    today: date | None = None,
) -> DemoSummary:
    """Create the demo year through the APIs at `urls` (activities, consultation, reporting)."""
    day = today or datetime.now(UTC).date()
    async with httpx.AsyncClient(timeout=30) as client:
        demo = _Demo(
            settings, client, urls, random.Random(seed), f"demo-{seed}-{day.isoformat()}", day
        )
        activity_api = (await client.get(f"{urls['activities']}/openapi.json")).json()
        alert_api = (await client.get(f"{urls['consultation']}/openapi.json")).json()
        members = await _members(demo)
        say("demo", f"{len(members)} members; loading {activities} activities through the API")
        await _activities(demo, activity_api, members, activities)
        say(
            "demo", f"activities: {demo.summary.activities} created, {demo.summary.changes} changed"
        )
        alert_ids = await _alerts(demo, alert_api, members)
        say("demo", f"alerts: {demo.summary.alerts}")
        await _follow_ups(demo, activity_api, alert_ids)
        say("demo", f"follow-up activities: {demo.summary.follow_ups}")
        if "reporting" in urls:
            await _wait_for_reporting(demo, say)
    for failure in demo.summary.failures[:10]:
        say("demo", f"refused: {failure}")
    return demo.summary


async def _members(demo: _Demo) -> dict[str, str]:
    """Member id -> kind, from the directory (active member states and organisations)."""
    response = await demo.client.get(
        f"{demo.urls['activities']}/v1/members",
        params={"page_size": 200, "active": "true"},
        headers=demo.headers(None, Role.admin),
    )
    response.raise_for_status()
    return {
        m["member_id"]: m["kind"]
        for m in response.json()["items"]
        if m["kind"] in ("member_state", "international_organisation", "regional_support_office")
    }


async def _gather(jobs: list[Callable[[], Awaitable[None]]]) -> None:
    gate = asyncio.Semaphore(_PARALLEL)

    async def guarded(job: Callable[[], Awaitable[None]]) -> None:
        async with gate:
            await job()

    await asyncio.gather(*(guarded(job) for job in jobs))


def _activity_body(
    demo: _Demo, api: Mapping[str, Any], members: dict[str, str], number: int
) -> tuple[str, dict[str, Any], str]:
    """A varied activity from the documented example; returns lead, body and the final status."""
    rng = demo.rng
    body = request_example(api, "/v1/activities", "post")
    lead = rng.choice(sorted(members))
    kind = rng.choice(schema_enum(api, "ActivityType"))
    covered = [n for n in THEMES if n not in UNCOVERED_ITEMS]
    items = sorted(rng.sample(covered, rng.choice([1, 1, 2, 2, 3])))
    if number < len(covered):
        items = sorted({covered[number], *items[:1]})  # every other item at least once
    start = demo.today - timedelta(days=rng.randint(-60, 360))
    end = start + timedelta(days=rng.choice([1, 2, 5, 14, 30, 90, 180]))
    if number < len(covered):
        # Running today, so every other item is covered this year whatever the day.
        start = demo.today - timedelta(days=rng.randint(10, 120))
        end = demo.today + timedelta(days=rng.randint(30, 200))
    if end < demo.today:
        status = "cancelled" if rng.random() < 0.06 else "completed"
    elif start <= demo.today:
        status = "ongoing" if number < len(covered) or rng.random() < 0.9 else "suspended"
    else:
        status = "planned"
    others = [m for m in sorted(members) if m != lead]
    body.update(
        title=KIND_TITLES[kind].format(THEMES[items[0]]),
        description=f"Demo activity {number + 1} under items {', '.join(map(str, items))}.",
        items=items,
        type=kind,
        status="planned",
        participants=[
            {
                "member_id": m,
                "role": rng.choice(["participant", "participant", "funder", "co_lead"]),
            }
            for m in rng.sample(others, rng.randint(0, 3))
        ],
        planned_start=start.isoformat(),
        planned_end=end.isoformat(),
        actual_start=None,
        actual_end=None,
        countries=[lead]
        if members[lead] == "member_state" and len(lead) == 2
        else [rng.choice(["TH", "ID", "MY", "PH", "BD"])],
        outputs=[],
        tags=[
            rng.choice(
                [
                    "capacity building",
                    "online scam operations",
                    "digital literacy",
                    "returns",
                    "protection",
                ]
            )
        ],
    )
    return lead, body, status


def _outputs(rng: random.Random, kind: str) -> list[dict[str, Any]]:
    outputs = []
    for indicator, unit, low, high, people in OUTPUTS.get(kind, []):
        value = rng.randint(low, high)
        output: dict[str, Any] = {"indicator": indicator, "value": value}
        if unit:
            output["unit"] = unit
        if people:
            female = rng.randint(0, value)
            output["by_sex"] = {"female": female, "male": value - female}
            shares = sorted(rng.choices(range(value + 1), k=len(AGE_GROUPS) - 1))
            bounds = [0, *shares, value]
            output["by_age"] = [
                {"age_group": group, "value": bounds[i + 1] - bounds[i]}
                for i, group in enumerate(AGE_GROUPS)
                if bounds[i + 1] > bounds[i]
            ]
        outputs.append(output)
    return outputs


async def _activities(
    demo: _Demo, api: Mapping[str, Any], members: dict[str, str], count: int
) -> None:
    plans = [(n, *_activity_body(demo, api, members, n)) for n in range(count)]
    outputs = {n: _outputs(demo.rng, body["type"]) for n, _, body, _ in plans}
    deletions = set(demo.rng.sample(range(count), k=max(1, count // 40)))
    restores = set(sorted(deletions)[: max(1, len(deletions) // 3)])
    base = f"{demo.urls['activities']}/v1/activities"

    async def run(number: int, lead: str, body: dict[str, Any], status: str) -> None:
        # One in four walks its lifecycle step by step (status-change events); the others
        # are logged after the fact, in their final state, as agencies often do.
        stepwise = number % 4 == 0
        steps = _lifecycle(body, status, outputs[number])
        if not stepwise:
            for change in steps:
                body = body | change
            steps = []
        created = await demo.call(
            "POST",
            base,
            ok=(200, 201),
            json=body,
            headers=demo.headers(lead, key=f"activity-{number}"),
        )
        if created is None:
            return
        demo.summary.activities += 1
        activity = created.json()
        url, etag = f"{base}/{activity['id']}", created.headers.get("etag", "")
        for change in steps:
            patched = await demo.call(
                "PATCH",
                url,
                ok=(200,),
                json=change,
                headers={**demo.headers(lead), "If-Match": etag},
            )
            if patched is None:
                return
            demo.summary.changes += 1
            etag = patched.headers.get("etag", "")
        if number in deletions:
            if await demo.call("DELETE", url, ok=(200,), headers=demo.headers(lead)):
                demo.summary.deleted += 1
            if number in restores and await demo.call(
                "POST", f"{url}/restore", ok=(200,), headers=demo.headers(lead)
            ):
                demo.summary.restored += 1

    await _gather([functools.partial(run, *plan) for plan in plans])


def _lifecycle(
    body: dict[str, Any], status: str, outputs: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The changes that take a planned activity to `status`, with its outputs."""
    steps: list[dict[str, Any]] = []
    if status not in ("planned", "cancelled"):
        steps.append({"status": "ongoing", "actual_start": body["planned_start"]})
    if status in ("completed", "cancelled", "suspended"):
        change: dict[str, Any] = {"status": status}
        if status == "completed":
            change |= {"actual_end": body["planned_end"], "outputs": outputs}
        steps.append(change)
    elif status == "ongoing" and outputs:
        steps.append({"outputs": outputs[:1]})
    return steps


async def _alerts(
    demo: _Demo, api: Mapping[str, Any], members: dict[str, str]
) -> dict[int, tuple[str, list[str]]]:
    """Raise the demo alerts and walk each along its path; returns number -> (id, affected)."""
    base = f"{demo.urls['consultation']}/v1/alerts"
    states = [
        m for m, kind in sorted(members.items()) if kind == "member_state" and m not in ("AU", "ID")
    ]
    severities = schema_enum(api, "Severity")[:3]
    raised: dict[int, tuple[str, list[str]]] = {}

    async def walk(number: int, path: list[str]) -> None:
        rng = random.Random(f"{demo.key}-alert-{number}")
        situation, title, places = SITUATIONS[number % len(SITUATIONS)]
        raiser = rng.choice(states)
        affected = sorted({rng.choice(["ID", "AU"]), rng.choice(states)} - {raiser})
        people = rng.randint(40, 900)
        place = rng.choice(places)
        body = request_example(api, "/v1/alerts", "post")
        body.update(
            situation_type=situation,
            title=title.format(people, place),
            description=f"Demo alert {number + 1}: {title.format(people, place)}.",
            severity=severities[number % len(severities)],
            affected_members=affected,
            location={"place_names": [place]},
            people_affected={"estimate": people, "women": people // 4, "children": people // 3},
            sensitivity="restricted" if number == RESTRICTED else "public",
            dedup_key=f"{demo.key}-alert-{number}",
        )
        created = await demo.call(
            "POST",
            base,
            ok=(200, 201),
            json=body,
            headers=demo.headers(raiser, key=f"alert-{number}"),
        )
        if created is None:
            return
        alert_id = created.json()["id"]
        raised[number] = (alert_id, affected)
        url = f"{base}/{alert_id}"
        co_chair = "ID" if number % 2 else "AU"
        reached = "raised"
        for step in path:
            request = _step(demo, api, step, raiser, co_chair)
            if request is None:
                continue
            suffix, who, role, payload = request
            if await demo.call(
                "POST",
                f"{url}/{suffix}",
                ok=(200,),
                json=payload,
                headers=demo.headers(who, role, key=f"alert-{number}-{step}"),
            ):
                reached = step
        demo.summary.alerts[reached] = demo.summary.alerts.get(reached, 0) + 1

    await _gather([functools.partial(walk, n, p) for n, p in enumerate(ALERT_PATHS)])
    return raised


def _step(
    demo: _Demo, api: Mapping[str, Any], step: str, raiser: str, co_chair: str
) -> tuple[str, str, Role, dict[str, Any] | None] | None:
    route = "/v1/alerts/{alert_id}"
    if step == "acknowledged":
        return "acknowledge", co_chair, Role.co_chair, None
    if step == "escalated":
        return (
            "escalate",
            co_chair,
            Role.co_chair,
            request_example(api, f"{route}/escalate", "post"),
        )
    if step == "convened":
        body = request_example(api, f"{route}/consultations", "post")
        body["convened_for"] = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        return "consultations", co_chair, Role.co_chair, body
    if step == "outreach":
        return (
            "outreach",
            co_chair,
            Role.co_chair,
            request_example(api, f"{route}/outreach", "post"),
        )
    if step == "resolved":
        return "resolve", co_chair, Role.co_chair, request_example(api, f"{route}/resolve", "post")
    if step == "withdrawn":
        return "withdraw", raiser, Role.member, request_example(api, f"{route}/withdraw", "post")
    return None


async def _follow_ups(
    demo: _Demo, api: Mapping[str, Any], alerts: dict[int, tuple[str, list[str]]]
) -> None:
    """Outreach and return work (items 12, 13, 20) that follows up the alerts that moved on."""
    base = f"{demo.urls['activities']}/v1/activities"

    async def create(number: int, lead: str, body: dict[str, Any]) -> None:
        headers = demo.headers(lead, key=f"follow-up-{number}")
        if await demo.call("POST", base, ok=(200, 201), json=body, headers=headers):
            demo.summary.follow_ups += 1

    jobs: list[Callable[[], Awaitable[None]]] = []
    for number, (alert_id, affected) in sorted(alerts.items()):
        path = ALERT_PATHS[number]
        if "convened" not in path:
            continue
        returns = "resolved" in path
        lead = affected[0] if affected else "ID"
        start = demo.today - timedelta(days=1)
        body = request_example(api, "/v1/activities", "post")
        body.update(
            title=f"Follow-up of alert {number + 1}: "
            + ("returns and reintegration" if returns else "outreach and protection"),
            description="Good Offices outreach and return work after a Consultation Mechanism "
            "alert.",
            items=[20] if returns else [12, 13],
            type="joint_operation",
            status="ongoing",
            participants=[{"member_id": "IOM", "role": "participant"}] if lead != "IOM" else [],
            planned_start=start.isoformat(),
            planned_end=(start + timedelta(days=30)).isoformat(),
            actual_start=start.isoformat(),
            actual_end=None,
            countries=[],
            outputs=[],
            related_alert_id=alert_id,
        )
        jobs.append(functools.partial(create, number, lead, body))
    await _gather(jobs)


async def _wait_for_reporting(demo: _Demo, say: Say, timeout_s: float = 60) -> None:
    """Until reporting has received the demo's alerts and activities (its dashboard is full)."""
    url = f"{demo.urls['reporting']}/v1/reports/alerts"
    deadline = asyncio.get_running_loop().time() + timeout_s
    wanted = sum(demo.summary.alerts.values())
    while asyncio.get_running_loop().time() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            response = await demo.client.get(
                url, headers=demo.headers(None, Role.admin), params={"page_size": 1}
            )
            if response.status_code == 200 and sum(response.json()["by_status"].values()) >= wanted:
                say("demo", f"reporting is up to date: {demo.urls['reporting']}/docs")
                return
        await asyncio.sleep(0.5)
    say("demo", "reporting has not caught up yet; its reports fill in as events arrive")
