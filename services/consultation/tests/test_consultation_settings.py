"""Settings of the consultation service: the escalation policy from the environment."""

from __future__ import annotations

import json

import pytest
from bali_common.events.alerts import Severity
from bali_consultation.settings import ConsultationSettings, EscalationStep


def test_escalation_policy_is_configurable_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policy = {
        "Minor": [{"after_minutes": 2}, {"after_minutes": 5, "notify_senior_officials": True}]
    }
    monkeypatch.setenv("BALI_ESCALATION_POLICY", json.dumps(policy))
    settings = ConsultationSettings()
    assert settings.escalation_steps(Severity.minor) == [
        EscalationStep(after_minutes=2),
        EscalationStep(after_minutes=5, notify_senior_officials=True),
    ]
    assert settings.escalation_steps(Severity.extreme) == []
