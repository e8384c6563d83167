"""A consumer exports how far it is behind, from its own fetches, on the test broker."""

from __future__ import annotations

import uuid

import pytest

from shared.kafka import make_consumer, make_producer
from shared.kafka.lag import CONSUMER_LAG
from shared.settings import KafkaSettings
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

RECORDS = 50


def lag_of(group: str, topic: str) -> dict[int, int]:
    return {p: lag for g, t, p, lag in CONSUMER_LAG.samples() if (g, t) == (group, topic)}


async def test_a_consumer_reports_its_lag_per_partition_as_it_reads_and_forgets_it_when_stopped(
    kafka_settings: KafkaSettings,
) -> None:
    topic = f"{kafka_settings.topic_namespace}.events"
    group = f"lag-{uuid.uuid4().hex[:8]}"
    producer = make_producer(kafka_settings)
    await producer.start()
    try:
        sent = [await producer.send(topic, b"x", partition=0) for _ in range(RECORDS)]
        marks = [await ack for ack in sent]
    finally:
        await producer.stop()
    end = marks[-1].offset + 1
    consumer = make_consumer(kafka_settings, topic, group_id=group, max_poll_records=10)
    await consumer.start()
    try:
        read = 0

        async def first_records() -> int | None:
            nonlocal read
            batch = await consumer.getmany(timeout_ms=200, max_records=10)
            read += sum(len(r) for tp, r in batch.items() if tp.partition == 0)
            return read or None

        await eventually(first_records, timeout_s=20)
        consumer.report_lag()
        behind = lag_of(group, topic)
        position = await consumer.position(
            next(tp for tp in consumer.assignment() if tp.partition == 0)
        )
        assert behind[0] == end - position > 0

        async def caught_up() -> bool:
            await consumer.getmany(timeout_ms=200, max_records=500)
            consumer.report_lag()
            return lag_of(group, topic).get(0) == 0

        await eventually(caught_up, timeout_s=20)
    finally:
        await consumer.stop()
    assert lag_of(group, topic) == {}
