"""Prometheus metrics of the alert response: time to acknowledge, convene, resolve; escalations."""

from __future__ import annotations

from bali_common.db import as_utc
from prometheus_client import CollectorRegistry, Counter, Histogram

from bali_consultation.alerts.models import Alert

#: From one minute to two weeks: alerts are answered in minutes, resolved in days.
_BUCKETS = (60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 86400, 3 * 86400, 7 * 86400, 14 * 86400)


class ResponseMetrics:
    """Registered in the service instance's own registry, served at /metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def histogram(milestone: str) -> Histogram:
            return Histogram(
                f"bali_alert_seconds_to_{milestone}",
                f"Seconds from raising an alert to {milestone} it, by severity",
                ["severity"],
                buckets=_BUCKETS,
                registry=registry,
            )

        self.to_acknowledge = histogram("acknowledge")
        self.to_convene = histogram("convene")
        self.to_resolve = histogram("resolve")
        self.escalations = Counter(
            "bali_alert_escalations_total",
            "Alert escalations, by reason (unacknowledged_timeout or manual)",
            ["reason"],
            registry=registry,
        )

    def observe_step(self, kind: str, alert: Alert) -> None:
        """Record the milestone a step just reached, measured from the alert's raising."""
        raised = as_utc(alert.raised_at)
        updated = as_utc(alert.updated_at)
        reached = {
            "acknowledged": (self.to_acknowledge, alert.acknowledged_at),
            "consultation_convened": (self.to_convene, alert.convened_at),
            "resolved": (self.to_resolve, alert.resolved_at),
        }.get(kind)
        if reached is None:
            if kind == "escalated":
                self.escalations.labels("manual").inc()
            return
        histogram, at = reached
        # A repeated consultation does not move the first one's time: observe only when the
        # milestone was set by this very step.
        if at is not None and as_utc(at) == updated:
            histogram.labels(alert.severity).observe((updated - raised).total_seconds())
