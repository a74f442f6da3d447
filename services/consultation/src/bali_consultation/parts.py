"""The consultation service's own collaborators, built once per app beside the shared runtime."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bali_consultation.metrics import ResponseMetrics
from bali_consultation.settings import ConsultationSettings

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class ConsultationParts:
    """Read through `ServiceRuntime.parts_as` by the dependencies and the escalation loop."""

    settings: ConsultationSettings
    #: Injected so that tests drive escalation and link expiry without sleeping.
    clock: Clock
    metrics: ResponseMetrics

    def now(self) -> datetime:
        return self.clock().astimezone(UTC)
