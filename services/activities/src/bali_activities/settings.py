"""Settings of the activities service."""

from __future__ import annotations

from bali_common.settings import CommonSettings


class ActivitiesSettings(CommonSettings):
    service_name: str = "activities"
    port: int = 8001
