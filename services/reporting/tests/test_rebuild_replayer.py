"""The rebuild's replayer leaves no consumer open behind it, however far starting got."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from bali_devkit.testing.plugin import SettingsFactory
from bali_reporting import consumers
from bali_reporting.rebuild.replay import Replayer
from bali_reporting.settings import ReportingSettings


async def test_a_replayer_that_fails_while_starting_closes_its_consumer(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = await make_settings(ReportingSettings)
    group = consumers.handlers.consumer_group(consumers.GROUP)
    opened: list[AIOKafkaConsumer] = []

    async def seek_fails(self: AIOKafkaConsumer, *partitions: Any) -> None:
        # As when the service stops, or the broker drops, while the replay seeks.
        opened.append(self)
        await asyncio.sleep(0.1)  # the request to the broker, under way
        raise ConnectionError("the broker went away")

    monkeypatch.setattr(AIOKafkaConsumer, "seek_to_beginning", seek_fails)
    replayer = Replayer(settings, group, [], shadow=None, batch_events=10)  # type: ignore[arg-type]
    with pytest.raises(ConnectionError):
        await replayer.start()
    await replayer.stop()
    [consumer] = opened
    assert consumer._closed
