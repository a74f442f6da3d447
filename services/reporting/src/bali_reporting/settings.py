"""Settings of the reporting service."""

from __future__ import annotations

from bali_common.settings import CommonSettings
from pydantic import Field


class ReportingSettings(CommonSettings):
    service_name: str = "reporting"
    port: int = 8004
    activities_url: str = Field(
        default="http://127.0.0.1:8001",
        description="Base URL at which reporting reads the activities service's /metrics",
    )
    consultation_url: str = Field(
        default="http://127.0.0.1:8002",
        description="Base URL at which reporting reads the consultation service's /metrics",
    )
    notifications_url: str = Field(
        default="http://127.0.0.1:8003",
        description="Base URL at which reporting reads the notifications service's /metrics",
    )
    scrape_timeout_s: float = Field(
        default=2.0, gt=0, le=30, description="A service slower than this is reported unreachable"
    )
    export_max_rows: int = Field(
        default=50_000, ge=1, description="Exports with more rows are refused (422)"
    )
    rebuild_batch_events: int = Field(
        default=5_000, ge=1, le=50_000, description="Events a rebuild applies per transaction"
    )
