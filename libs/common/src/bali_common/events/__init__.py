"""The one place events are declared: envelope, topics, registry and one module per stream."""

# One module per stream; importing them fills the registry.
from bali_common.events import activities, alerts, members, notifications
from bali_common.events.envelope import CloudEvent, InvalidEvent
from bali_common.events.registry import REGISTRY, EventPayload, event_type
from bali_common.events.topics import DEAD_LETTER_TOPIC, STREAM_TOPICS, Stream

__all__ = [
    "DEAD_LETTER_TOPIC",
    "REGISTRY",
    "STREAM_TOPICS",
    "CloudEvent",
    "EventPayload",
    "InvalidEvent",
    "Stream",
    "activities",
    "alerts",
    "event_type",
    "members",
    "notifications",
]
