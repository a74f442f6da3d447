"""Settings of the activities service."""

from __future__ import annotations

from bali_common.settings import CommonSettings
from pydantic import Field


class ActivitiesSettings(CommonSettings):
    service_name: str = "activities"
    port: int = 8001
    seed_reference_members: bool = Field(
        default=True, description="Load the Bali Process membership when the directory is empty"
    )
    import_max_rows: int = Field(default=1000, ge=1, description="Rows accepted per bulk import")
    import_max_unpacked_bytes: int = Field(
        default=20 * 1_048_576,
        ge=1,
        description="Refuse XLSX files that unpack to more than this (zip bombs)",
    )
    export_max_rows: int = Field(
        default=20_000, ge=1, description="Exports matching more activities are refused (422)"
    )
