"""Reporting tallies every event it receives, once, whatever the broker redelivers."""

from __future__ import annotations

import json
from pathlib import Path

from aiokafka import AIOKafkaProducer
from bali_common.auth import Role
from bali_common.events import REGISTRY, STREAM_TOPICS, CloudEvent
from bali_common.events.asyncapi import message_id
from bali_devkit.testing.plugin import SettingsFactory, bearer, eventually, running
from bali_reporting.app import create_app
from bali_reporting.settings import ReportingSettings

CONTRACTS = Path(__file__).parents[3] / "libs" / "common" / "tests" / "contracts"


async def test_each_event_is_counted_once_even_when_published_twice(
    make_settings: SettingsFactory,
) -> None:
    settings = await make_settings(ReportingSettings)
    app = create_app(settings)
    definitions = [d for d in REGISTRY if (CONTRACTS / f"{message_id(d)}.json").exists()]
    async with running(app) as client:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
        await producer.start()
        try:
            for definition in definitions:
                payload = definition.model.model_validate_json(
                    (CONTRACTS / f"{message_id(definition)}.json").read_text()
                )
                event = CloudEvent.of(payload, source="/test", subject="aggregate-1")
                topic = STREAM_TOPICS[definition.stream].qualified(settings.kafka_topic_prefix)
                for _ in range(2):  # a redelivery: same event id
                    await producer.send_and_wait(
                        topic,
                        event.kafka_value(),
                        key=event.kafka_key(),
                        headers=event.kafka_headers(),
                    )
        finally:
            await producer.stop()
        ops = bearer(settings, member="RSO", roles=[Role.ops])

        async def all_counted() -> bool:
            body = (await client.get("/v1/pipeline/event-counts", headers=ops)).json()
            return body["total"] == len(definitions)

        await eventually(all_counted)
        body = (await client.get("/v1/pipeline/event-counts", headers=ops)).json()
        assert {item["event_type"]: item["count"] for item in body["items"]} == {
            d.type: 1 for d in definitions
        }
        member = await client.get(
            "/v1/pipeline/event-counts", headers=bearer(settings, member="NZ")
        )
        assert member.status_code == 403
        assert json.loads(member.text)["status"] == 403
