"""Settings of the consultation service."""

from __future__ import annotations

import re
from typing import Literal

from bali_common.events.alerts import Severity
from bali_common.settings import CommonSettings
from pydantic import BaseModel, ConfigDict, Field, field_validator

# CAP 1.2 section 3.2.1: identifier and sender MUST NOT include spaces, commas or < and &.
_CAP_TOKEN = re.compile(r"[^\s,<&]+")


class EscalationStep(BaseModel):
    """One step of an escalation policy: what happens after so long without acknowledgement."""

    model_config = ConfigDict(frozen=True)

    after_minutes: float = Field(
        gt=0, description="Minutes after the alert was raised (or reopened)"
    )
    notify_senior_officials: bool = Field(
        default=False, description="Widen the audience to senior officials, not only re-notify"
    )


def default_escalation_policy() -> dict[Severity, list[EscalationStep]]:
    return {
        Severity.extreme: [
            EscalationStep(after_minutes=10),
            EscalationStep(after_minutes=30, notify_senior_officials=True),
        ],
        Severity.severe: [
            EscalationStep(after_minutes=30),
            EscalationStep(after_minutes=120, notify_senior_officials=True),
        ],
        Severity.moderate: [EscalationStep(after_minutes=240)],
        Severity.minor: [],
        Severity.unknown: [EscalationStep(after_minutes=60)],
    }


class ConsultationSettings(CommonSettings):
    service_name: str = "consultation"
    port: int = 8002
    signs_links = True

    escalation_policy: dict[Severity, list[EscalationStep]] = Field(
        default_factory=default_escalation_policy,
        description="Per severity, the steps taken while an alert stays unacknowledged "
        '(JSON in BALI_ESCALATION_POLICY, e.g. {"Extreme": [{"after_minutes": 10}]})',
    )
    escalation_loop_enabled: bool = Field(
        default=True, description="Run the timer loop in this process (off for API-only replicas)"
    )
    escalation_poll_interval_s: float = Field(default=5.0, gt=0)
    escalation_batch_size: int = Field(default=100, ge=1)
    reopen_window_hours: float = Field(
        default=72.0, ge=0, description="How long after resolution or withdrawal an alert reopens"
    )
    co_chair_members: list[str] = Field(
        default_factory=lambda: ["ID", "AU"],
        description="Co-chair member ids used until the member directory names them",
    )
    cap_sender: str = Field(
        default="consultation@bali-process.example",
        description="CAP <sender>: globally unique originator id (CAP 1.2 section 3.2.1)",
    )
    cap_status: Literal["Actual", "Exercise", "System", "Test", "Draft"] = "Actual"
    feed_max_entries: int = Field(default=50, ge=1, le=500)

    @field_validator("cap_sender")
    @classmethod
    def _cap_sender_is_a_token(cls, value: str) -> str:
        if not _CAP_TOKEN.fullmatch(value):
            raise ValueError("CAP sender may not contain spaces, commas, '<' or '&'")
        return value

    def escalation_steps(self, severity: Severity) -> list[EscalationStep]:
        return list(self.escalation_policy.get(severity, []))
