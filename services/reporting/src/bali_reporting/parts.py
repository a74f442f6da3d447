"""The reporting service's own collaborators, built once per app by the composition root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bali_common.messaging.handlers import ConsumerGroup
from bali_common.runtime import ServiceRuntime
from fastapi.templating import Jinja2Templates

from bali_reporting.pages import StaticFile, load_static, templates
from bali_reporting.projections import PROJECTION_MODELS, PROJECTIONS
from bali_reporting.projections.pipeline import MetricsScraper, ScrapeTarget
from bali_reporting.rebuild.service import Rebuilds
from bali_reporting.settings import ReportingSettings

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ReportingParts:
    clock: Clock
    scraper: MetricsScraper
    rebuilds: Rebuilds
    #: The dashboard's and the progress report's templates, and the files pages load.
    templates: Jinja2Templates
    static: dict[str, StaticFile]


def parts_factory(
    settings: ReportingSettings, group: ConsumerGroup, clock: Clock
) -> Callable[[ServiceRuntime], ReportingParts]:
    def build(runtime: ServiceRuntime) -> ReportingParts:
        targets = [
            ScrapeTarget("activities", settings.activities_url),
            ScrapeTarget("consultation", settings.consultation_url),
            ScrapeTarget("notifications", settings.notifications_url),
        ]
        static = load_static()
        return ReportingParts(
            clock=clock,
            templates=templates(static),
            static=static,
            scraper=MetricsScraper(
                targets,
                timeout_s=settings.scrape_timeout_s,
                own_service=settings.service_name,
                own_metrics=runtime.metrics.render,
            ),
            rebuilds=Rebuilds(
                settings=settings,
                sessions=runtime.sessions,
                group=group,
                projections=PROJECTIONS,
                models=PROJECTION_MODELS,
                batch_events=settings.rebuild_batch_events,
            ),
        )

    return build
