"""The services whose OpenAPI documents the contract tests hold them to: one line each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bali_activities.app import create_app as create_activities
from bali_activities.settings import ActivitiesSettings
from bali_common.settings import CommonSettings
from bali_consultation.app import create_app as create_consultation
from bali_consultation.settings import ConsultationSettings
from bali_notifications.app import create_app as create_notifications
from bali_notifications.settings import NotificationsSettings
from bali_reporting.app import create_app as create_reporting
from bali_reporting.settings import ReportingSettings
from fastapi import FastAPI

#: The media type of server-sent events.
EVENT_STREAM = "text/event-stream"


#: A metric line showing a write that got past its authorization.
AUTHORISED_WRITE = r'bali_http_requests_total\{method="POST",route="/v1/[^"]+",status="20[01]"'


@dataclass(frozen=True)
class ServiceUnderTest:
    settings: type[CommonSettings]
    create_app: Callable[..., FastAPI]
    #: What the metrics show once the callers' tokens were used past authorization.
    authorised: str = AUTHORISED_WRITE


SERVICES: dict[str, ServiceUnderTest] = {
    "activities": ServiceUnderTest(ActivitiesSettings, create_activities),
    "consultation": ServiceUnderTest(ConsultationSettings, create_consultation),
    "notifications": ServiceUnderTest(NotificationsSettings, create_notifications),
    # Reporting only reads: the reports, past the callers' authorization.
    "reporting": ServiceUnderTest(
        ReportingSettings,
        create_reporting,
        authorised=r'bali_http_requests_total\{method="GET",route="/v1/reports/[^"]+",status="200"',
    ),
}
