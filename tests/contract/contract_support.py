"""The services whose OpenAPI documents the contract tests hold them to: one line each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bali_activities.app import create_app as create_activities
from bali_activities.settings import ActivitiesSettings
from bali_common.settings import CommonSettings
from bali_consultation.app import create_app as create_consultation
from bali_consultation.settings import ConsultationSettings
from fastapi import FastAPI


@dataclass(frozen=True)
class ServiceUnderTest:
    settings: type[CommonSettings]
    create_app: Callable[..., FastAPI]


#: Notifications and reporting join with one line each once their rework lands.
SERVICES: dict[str, ServiceUnderTest] = {
    "activities": ServiceUnderTest(ActivitiesSettings, create_activities),
    "consultation": ServiceUnderTest(ConsultationSettings, create_consultation),
}
