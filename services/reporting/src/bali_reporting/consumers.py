"""Consumers of the reporting service: one group feeding every projection, in order."""

from __future__ import annotations

from bali_common.messaging.handlers import EventHandlers

from bali_reporting.projections import PROJECTIONS

GROUP = "reporting.projections"

handlers = EventHandlers()

# Each projection applies a fetched batch's events with one statement per table.
for _projection in PROJECTIONS:
    handlers.on_batch(*_projection.takes)(_projection.apply)
