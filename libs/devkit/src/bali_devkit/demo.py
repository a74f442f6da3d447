"""Demo data for `bali up --demo`, loaded through the public APIs like any member agency would."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx
from bali_common.auth import Role, issue_dev_token
from bali_common.settings import CommonSettings

Say = Callable[[str, str], None]

DEMO_ACTIVITIES: list[tuple[str, dict[str, Any]]] = [
    (
        "TH",
        {
            "title": "Regional workshop on trafficking into online scam operations",
            "description": "Two-day workshop for law enforcement and victim-support officers.",
            "items": [3, 12],
            "type": "workshop",
            "status": "completed",
            "participants": [
                {"member_id": "IOM", "role": "participant"},
                {"member_id": "AU", "role": "funder"},
            ],
            "planned_start": "2025-03-10",
            "planned_end": "2025-03-11",
            "actual_start": "2025-03-10",
            "actual_end": "2025-03-11",
            "countries": ["TH"],
            "outputs": [
                {"indicator": "officers trained", "value": 40, "by_sex": {"female": 18, "male": 22}}
            ],
            "tags": ["online scam operations"],
        },
    ),
    (
        "ID",
        {
            "title": "Safe migration public information campaign for coastal youth",
            "description": "Radio and social media campaign with digital literacy sessions.",
            "items": [9],
            "type": "public_information_campaign",
            "status": "ongoing",
            "planned_start": "2026-06-01",
            "planned_end": "2027-05-31",
            "actual_start": "2026-06-03",
            "countries": ["ID"],
            "tags": ["digital literacy"],
        },
    ),
    (
        "IOM",
        {
            "title": "Table-top exercise: mass irregular movement by sea",
            "description": "Multi-disciplinary planning exercise with search and rescue agencies.",
            "items": [11, 13],
            "type": "table_top_exercise",
            "status": "planned",
            "participants": [{"member_id": "AU", "role": "co_lead"}],
            "planned_start": "2027-03-15",
            "planned_end": "2027-03-16",
            "countries": ["MY"],
        },
    ),
]

DEMO_ALERT: dict[str, Any] = {
    "situation_type": "maritime_distress",
    "title": "Two boats adrift south of Rote Island",
    "description": "Two wooden boats with about 120 people adrift for two days; engine failure.",
    "severity": "Extreme",
    "urgency": "Immediate",
    "certainty": "Observed",
    "affected_members": ["ID", "AU"],
    "location": {"place_names": ["Timor Sea", "south of Rote Island"]},
    "people_affected": {"estimate": 120, "women": 30, "children": 40},
    "requested_actions": ["Search and rescue coordination", "Disembarkation arrangements"],
    "sensitivity": "public",
    "dedup_key": "demo-rote-boats",
}


def _headers(settings: CommonSettings, member: str, key: str) -> dict[str, str]:
    token = issue_dev_token(
        settings, subject=f"demo-{member.lower()}", member_id=member, roles=[Role.member]
    )
    return {"Authorization": f"Bearer {token}", "Idempotency-Key": key}


async def load_demo(settings: CommonSettings, urls: Mapping[str, str], say: Say) -> None:
    """Create the demo records; a second run replays the same Idempotency-Keys, adding nothing."""
    async with httpx.AsyncClient(timeout=10) as client:
        for number, (member, body) in enumerate(DEMO_ACTIVITIES, start=1):
            response = await client.post(
                f"{urls['activities']}/v1/activities",
                json=body,
                headers=_headers(settings, member, f"demo-activity-{number}"),
            )
            say("demo", f"activity by {member}: {response.status_code} {body['title']}")
        response = await client.post(
            f"{urls['consultation']}/v1/alerts",
            json=DEMO_ALERT,
            headers=_headers(settings, "TH", "demo-alert-1"),
        )
        say("demo", f"alert raised by TH: {response.status_code} {DEMO_ALERT['title']}")
