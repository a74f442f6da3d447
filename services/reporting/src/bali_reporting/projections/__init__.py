"""The read models of the reporting service, each fed only by events (see `base`)."""

from __future__ import annotations

from bali_reporting.projections import (
    alerts,
    coverage,
    deliveries,
    follow_up,
    indicators,
    members,
    pipeline,
    response_times,
    trends,
)
from bali_reporting.projections.base import Projection

#: Every projection, in the order their handlers run for one event.
PROJECTIONS: tuple[Projection, ...] = (
    members.PROJECTION,
    coverage.PROJECTION,
    trends.PROJECTION,
    indicators.PROJECTION,
    follow_up.PROJECTION,
    alerts.PROJECTION,
    response_times.PROJECTION,
    deliveries.PROJECTION,
    pipeline.PROJECTION,
)

#: Their tables, which a rebuild replaces together.
PROJECTION_MODELS = tuple(model for projection in PROJECTIONS for model in projection.models)
