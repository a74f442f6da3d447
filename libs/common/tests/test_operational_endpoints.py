"""/metrics and the API documents: open by default, closed or behind a token by setting."""

from __future__ import annotations

from bali_common.runtime import ServiceDefinition, build_app
from bali_common.settings import CommonSettings
from bali_devkit.testing.plugin import SettingsFactory, running
from fastapi import FastAPI
from pydantic import SecretStr

DOCUMENTS = ("/docs", "/redoc", "/openapi.json")


def create_app(settings: CommonSettings) -> FastAPI:
    definition = ServiceDefinition(name="ops", title="Ops", description="", models=[], routers=[])
    return build_app(definition, settings)


async def test_metrics_and_documents_are_open_by_default(make_settings: SettingsFactory) -> None:
    app = create_app(await make_settings(CommonSettings, service_name="ops"))
    async with running(app) as client:
        assert (await client.get("/metrics")).status_code == 200
        for path in DOCUMENTS:
            assert (await client.get(path)).status_code == 200, path


async def test_a_metrics_token_guards_the_scrapes(make_settings: SettingsFactory) -> None:
    token = "scrape-token-for-tests"
    settings = await make_settings(
        CommonSettings, service_name="ops", metrics_token=SecretStr(token)
    )
    async with running(create_app(settings)) as client:
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": f"Basic {token}"},
            {"Authorization": "Bearer t\u00f6ken".encode("latin-1")},
        ):
            refused = await client.get("/metrics", headers=headers)
            assert refused.status_code == 401, headers
            assert refused.headers["WWW-Authenticate"] == "Bearer"
            assert "bali_" not in refused.text
        scraped = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert scraped.status_code == 200
        assert "bali_service_info" in scraped.text
        assert (await client.get("/healthz")).status_code == 200


async def test_documents_can_be_closed(make_settings: SettingsFactory) -> None:
    settings = await make_settings(CommonSettings, service_name="ops", api_docs=False)
    async with running(create_app(settings)) as client:
        for path in DOCUMENTS:
            closed = await client.get(path)
            assert closed.status_code == 404, path
            assert closed.headers["content-type"] == "application/problem+json"
