"""Kafka clients from settings, generic so Apache Kafka and the embedded broker both work."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaClient, AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context
from aiokafka.protocol.metadata import MetadataRequest

from bali_common.events.topics import TopicSpec, all_topics
from bali_common.settings import CommonSettings

log = logging.getLogger(__name__)


def connection_options(settings: CommonSettings) -> dict[str, Any]:
    """TLS and SASL for production clusters; plaintext for the embedded broker."""
    options: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    if "SSL" in settings.kafka_security_protocol:
        options["ssl_context"] = create_ssl_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
    if settings.kafka_security_protocol.startswith("SASL"):
        password = settings.kafka_sasl_password
        options |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism or "PLAIN",
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": password.get_secret_value() if password else None,
        }
    return options


def create_producer(settings: CommonSettings) -> AIOKafkaProducer:
    """acks=all always; idempotence only where the broker supports InitProducerId."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=f"{settings.service_name}-producer",
        acks="all",
        enable_idempotence=settings.kafka_idempotent_producer,
        request_timeout_ms=settings.kafka_request_timeout_ms,
        linger_ms=2,
        **connection_options(settings),
    )


def create_consumer(settings: CommonSettings, *, group_id: str) -> AIOKafkaConsumer:
    """Manual commits only: auto-commit hung for good across broker restarts on tansu 0.6.0.

    A new group starts at the earliest offset, since tansu's ListOffsets(latest)
    answers wrongly and nothing published before a consumer's first start may be missed.
    """
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=f"{settings.service_name}-{group_id}",
        group_id=f"{settings.kafka_topic_prefix}{group_id}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        rebalance_timeout_ms=settings.kafka_rebalance_timeout_ms,
        max_poll_interval_ms=settings.kafka_max_poll_interval_ms,
        request_timeout_ms=settings.kafka_request_timeout_ms,
        max_poll_records=500,
        **connection_options(settings),
    )


async def ensure_topics(
    settings: CommonSettings, topics: Sequence[TopicSpec] | None = None
) -> list[str]:
    """Create the catalogue's topics with their partition counts.

    Needed on tansu, which would otherwise auto-create them with 4 partitions on first use.
    Returns the names created by this call.
    """
    wanted = list(topics or all_topics())
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=f"{settings.service_name}-admin",
        request_timeout_ms=settings.kafka_request_timeout_ms,
        **connection_options(settings),
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            spec for spec in wanted if spec.qualified(settings.kafka_topic_prefix) not in existing
        ]
        if not missing:
            return []
        try:
            await admin.create_topics(
                [
                    NewTopic(
                        name=spec.qualified(settings.kafka_topic_prefix),
                        num_partitions=spec.partitions,
                        replication_factor=settings.kafka_replication_factor,
                    )
                    for spec in missing
                ]
            )
        except TopicAlreadyExistsError:
            log.info("topics created concurrently by another service")
        return [spec.qualified(settings.kafka_topic_prefix) for spec in missing]
    finally:
        await admin.close()


async def broker_incarnation(client: AIOKafkaClient) -> str | None:
    """The cluster id the broker reports in its metadata (MetadataResponse v2 and later).

    Apache Kafka keeps one for the cluster's whole life. The embedded broker is given a
    fresh one at each start, since it starts with an empty memory. None from a broker too
    old to say, which then counts as never changing.
    """
    node_id = client.get_random_node()
    if node_id is None:
        raise KafkaConnectionError("no broker known")
    response = await client.send(node_id, MetadataRequest([]))
    cluster_id = getattr(response, "cluster_id", None)
    return str(cluster_id) if cluster_id else None
