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
    dashboard_poll_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="How often an open dashboard's live alert board looks for changes",
    )
    dashboard_stream_s: float = Field(
        default=300.0,
        gt=0,
        le=3600,
        description="A live board stream ends after this long; the browser reconnects, "
        "which checks the sign-in token again",
    )
