"""Topics as ensure_topics creates them, on the test broker: compaction where ARCHITECTURE.md says,
the events stamped by the broker, drift reported on a topic someone else created; and, on Apache
Kafka only, the idempotent producer production turns on and the broker's stamps."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from structlog.testing import capture_logs

from shared.kafka import Topics, ensure_topics, make_producer
from shared.settings import KafkaSettings
from tests.support.kafka import read_topic

pytestmark = pytest.mark.integration


@pytest.fixture
def fresh(broker: str) -> KafkaSettings:
    """A namespace no topic exists in yet."""
    return KafkaSettings(
        bootstrap_servers=broker, topic_namespace=f"t{uuid.uuid4().hex[:12]}", partitions=2
    )


@pytest.fixture
async def admin(broker: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=broker)
    await client.start()
    yield client
    await client.close()


async def topic_configs(
    admin: AIOKafkaAdminClient, names: list[str], config: str
) -> dict[str, str | None]:
    # All configs: the dev broker drops the connection when asked for some by name.
    answers = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    )
    return {
        resource[3]: {entry[0]: entry[1] for entry in resource[4]}.get(config)
        for answer in answers
        for resource in answer.resources
    }


async def cleanup_policies(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, str | None]:
    return await topic_configs(admin, names, "cleanup.policy")


async def test_registry_and_room_state_are_created_compacted(fresh, admin):
    topics = Topics.from_settings(fresh)
    created = await ensure_topics(fresh)
    assert sorted(created) == sorted(topics.all())
    policies = await cleanup_policies(admin, [topics.registry, topics.room_state, topics.events])
    assert policies[topics.registry] == "compact"
    assert policies[topics.room_state] == "compact"
    assert policies[topics.events] != "compact"
    assert await ensure_topics(fresh) == []  # a second start creates nothing


async def test_the_events_topic_is_created_stamped_by_the_broker(fresh, admin):
    topics = Topics.from_settings(fresh)
    await ensure_topics(fresh)
    stamping = await topic_configs(
        admin, [topics.events, topics.deliveries], "message.timestamp.type"
    )
    assert stamping[topics.events] == "LogAppendTime"
    assert stamping[topics.deliveries] != "LogAppendTime"


async def test_an_existing_registry_topic_without_compaction_is_reported(fresh, admin):
    topics = Topics.from_settings(fresh)
    await admin.create_topics([NewTopic(topics.registry, 2, 1)])  # someone else's, no configs
    with capture_logs() as logs:
        created = await ensure_topics(fresh)
    assert topics.registry not in created
    drift = [e for e in logs if e["event"] == "kafka.topic_config_differs"]
    assert [(e["topic"], e["config"], e["wanted"]) for e in drift] == [
        (topics.registry, "cleanup.policy", "compact")
    ]


@pytest.mark.real_kafka
async def test_the_production_producer_is_idempotent_and_delivers(kafka_settings):
    """KAFKA_IDEMPOTENT_PRODUCER=true as compose and k8s set it: the dev broker cannot start
    this producer (so this test is real_kafka), Apache Kafka must."""
    settings = kafka_settings.model_copy(update={"idempotent_producer": True})
    topic = Topics.from_settings(settings).events
    producer = make_producer(settings)
    await producer.start()
    try:
        for n in range(20):
            await producer.send(topic, f"{n}".encode(), key=b"room-1")
        await producer.flush()
    finally:
        await producer.stop()
    records = await read_topic(settings, topic, at_least=20)
    assert [r.value for r in records] == [f"{n}".encode() for n in range(20)]


@pytest.mark.real_kafka
async def test_each_event_is_read_with_the_time_the_broker_appended_it(kafka_settings):
    """What fanout's stamps rest on (services/fanout/stamps.py): the time a producer puts on an
    event gives way to the broker's. The dev broker keeps the producer's: this is real_kafka."""
    topic = Topics.from_settings(kafka_settings).events
    producer = make_producer(kafka_settings)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"{}", key=b"room-1", timestamp_ms=1_000)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_settings.bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=15)
    finally:
        await consumer.stop()
    assert record.timestamp_type == 1  # LogAppendTime
    assert record.timestamp > 1_000
