"""Settings of the notifications service."""

from __future__ import annotations

from bali_common.settings import CommonSettings


class NotificationsSettings(CommonSettings):
    service_name: str = "notifications"
    port: int = 8003
