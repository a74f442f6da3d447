"""Settings of the consultation service."""

from __future__ import annotations

from bali_common.settings import CommonSettings


class ConsultationSettings(CommonSettings):
    service_name: str = "consultation"
    port: int = 8002
