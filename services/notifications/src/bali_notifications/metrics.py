"""Prometheus metrics of deliveries, registered in the service's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class NotificationMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.attempts = Counter(
            "bali_notification_attempts_total",
            "Delivery attempts by channel and outcome (delivered | failed)",
            ["channel", "outcome"],
            registry=registry,
        )
        self.attempt_latency = Histogram(
            "bali_notification_attempt_duration_seconds",
            "Time one delivery attempt took, by channel",
            ["channel"],
            registry=registry,
        )
        self.finished = Counter(
            "bali_notification_deliveries_finished_total",
            "Deliveries that reached a final status (delivered | failed | exhausted)",
            ["channel", "status"],
            registry=registry,
        )
        self.operator_warnings = Counter(
            "bali_notification_operator_warnings_total",
            "Warnings raised to operators: an Extreme alert's delivery keeps failing or gave up",
            ["reason"],
            registry=registry,
        )
        self.endpoints_disabled = Counter(
            "bali_notification_endpoints_disabled_total",
            "Webhook endpoints disabled because the receiver answered 410 Gone",
            registry=registry,
        )
