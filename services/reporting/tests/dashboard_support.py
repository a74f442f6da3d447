"""What the dashboard and progress report tests share: a small year of events, a browser-like
client with its own cookie jar, and tokens that the API refuses for different reasons."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import jwt
from bali_common.auth import DEV_ALGORITHM, jwk_thumbprint, load_or_create_dev_key
from bali_common.catalogue import load_strategy
from bali_common.events.activities import ActivityStatus, ParticipantRole
from bali_common.events.alerts import AlertStatus, Sensitivity, Severity
from bali_common.events.envelope import CloudEvent
from bali_common.settings import CommonSettings
from reporting_testkit import (
    NOW,
    Reporting,
    activity,
    activity_event,
    alert,
    alert_event,
    member_event,
    output,
)

STRATEGY = load_strategy()
#: Items no activity serves in 2025.
UNCOVERED = (19, 23)
PUBLIC_TITLE = "Two boats adrift south of Rote Island"
RESTRICTED_TITLE = "Smuggling network moving people through Penang"
FOLLOW_UP_TITLE = "Return of 40 people to Penang with IOM support"
MEMBERS = {
    "ID": "Indonesia",
    "AU": "Australia",
    "TH": "Thailand",
    "MY": "Malaysia",
    "PH": "Philippines",
}


def year_of_events() -> list[CloudEvent]:
    """Members, an activity for every item but the uncovered ones, outputs, and alerts: one
    public and open, one restricted to MY and AU and resolved."""
    events = [member_event(m, name=name, co_chair=m in ("ID", "AU")) for m, name in MEMBERS.items()]
    leads = ["TH", "MY", "PH", "ID"]
    for item in STRATEGY.items:
        if item.number in UNCOVERED:
            continue
        lead = leads[item.number % len(leads)]
        start = date(2025, 1 + item.number % 11, 3)
        events.append(
            activity_event(
                activity(
                    f"act-{item.number}",
                    items=[item.number],
                    lead=lead,
                    participants=[("AU", ParticipantRole.participant)],
                    status=ActivityStatus.completed if item.number % 2 else ActivityStatus.ongoing,
                    start=start,
                    end=start + timedelta(days=2),
                    outputs=[
                        output(
                            "officers trained",
                            10 + item.number,
                            female=5,
                            male=5 + item.number,
                            ages=[("25-39", 10)],
                        )
                    ],
                )
            )
        )
    public = alert(
        "pub-1",
        title=PUBLIC_TITLE,
        raised_by="TH",
        affected=["ID"],
        raised_at=NOW - timedelta(hours=2),
    )
    restricted = [
        alert(
            "res-1",
            version=version,
            status=status,
            title=RESTRICTED_TITLE,
            severity=Severity.severe,
            sensitivity=Sensitivity.restricted,
            raised_by="MY",
            affected=["AU"],
            raised_at=datetime(2025, 10, 1, 8, 0, tzinfo=UTC),
            acknowledged_after=timedelta(minutes=12) if version > 1 else None,
            resolved_after=timedelta(days=2) if status is AlertStatus.resolved else None,
        )
        for version, status in (
            (1, AlertStatus.raised),
            (2, AlertStatus.acknowledged),
            (3, AlertStatus.resolved),
        )
    ]
    events.append(
        activity_event(
            activity(
                "act-follow-up",
                items=[12],
                lead="MY",
                title=FOLLOW_UP_TITLE,
                related_alert_id="res-1",
                start=date(2025, 10, 20),
                end=date(2025, 10, 22),
            )
        )
    )
    events.append(alert_event(public))
    events += [alert_event(a, at=a.raised_at + timedelta(minutes=a.version)) for a in restricted]
    return events


def browser(service: Reporting) -> httpx.AsyncClient:
    """A client of the same app with a cookie jar of its own, as one browser has."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=service.app), base_url="http://testserver"
    )


def bearer_token(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def expired_token(settings: CommonSettings, **claims: Any) -> str:
    """Signed by the dev key and otherwise fine, but expired an hour ago (past any leeway)."""
    key = load_or_create_dev_key(settings.resolved_dev_key_path())
    past = int((datetime.now(UTC) - timedelta(hours=2)).timestamp())
    body = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": "rso-operations",
        "iat": past,
        "nbf": past,
        "exp": past + 3600,
        "jti": uuid.uuid4().hex,
        "roles": ["ops"],
        "member": "RSO",
        **claims,
    }
    return jwt.encode(
        body, key, algorithm=DEV_ALGORITHM, headers={"kid": jwk_thumbprint(key.public_key())}
    )
