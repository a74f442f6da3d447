"""The topic catalogue: every topic's name and partition count, declared once."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Stream(StrEnum):
    """One topic per aggregate stream, keyed by aggregate id so each aggregate stays ordered."""

    activities = "activities"
    members = "members"
    alerts = "alerts"
    notifications = "notifications"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    description: str
    producer: str

    def qualified(self, prefix: str) -> str:
        """Environments and test runs share one cluster by prefixing topic names."""
        return f"{prefix}{self.name}"


STREAM_TOPICS: dict[Stream, TopicSpec] = {
    Stream.activities: TopicSpec(
        "bali.activities",
        6,
        "Cooperation activities logged against the strategy items",
        "activities",
    ),
    Stream.members: TopicSpec(
        "bali.members", 3, "The member directory and its focal points", "activities"
    ),
    Stream.alerts: TopicSpec(
        "bali.alerts",
        6,
        "Consultation Mechanism alerts (strategy item 11) and their timeline",
        "consultation",
    ),
    Stream.notifications: TopicSpec(
        "bali.notifications", 6, "Outcomes of notification deliveries", "notifications"
    ),
}

DEAD_LETTER_TOPIC = TopicSpec(
    "bali.dead-letters",
    1,
    "Events a consumer could not apply after bounded retries, with the error in headers",
    "any",
)


def all_topics() -> list[TopicSpec]:
    return [*STREAM_TOPICS.values(), DEAD_LETTER_TOPIC]
