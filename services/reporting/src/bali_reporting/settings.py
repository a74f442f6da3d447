"""Settings of the reporting service."""

from __future__ import annotations

from bali_common.settings import CommonSettings


class ReportingSettings(CommonSettings):
    service_name: str = "reporting"
    port: int = 8004
