"""A group consumer commits and rewinds only what its current assignment fetched, on the test
broker (shared/kafka/fences.py): what a batch fetched before a rebalance, or before the dev
broker restarted empty, asks for beyond that is left to the partition's next reader."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition

from shared.kafka import make_consumer, make_producer
from shared.settings import KafkaSettings
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


async def test_a_group_consumer_commits_and_rewinds_only_within_what_it_fetched(
    kafka_settings: KafkaSettings,
) -> None:
    topic = f"{kafka_settings.topic_namespace}.events"
    tp = TopicPartition(topic, 0)
    producer = make_producer(kafka_settings)
    await producer.start()
    try:
        for n in range(6):
            await producer.send_and_wait(topic, f"r{n}".encode(), partition=0)
    finally:
        await producer.stop()
    consumer = make_consumer(kafka_settings, topic, group_id=f"{topic}-fences")
    await consumer.start()
    try:
        offsets: list[int] = []

        async def read_all() -> bool:
            batch = await consumer.getmany(tp, timeout_ms=200) if consumer.assignment() else {}
            offsets.extend(r.offset for r in batch.get(tp, []))
            return len(offsets) == 6

        await eventually(read_all, timeout_s=30)
        assert await consumer.position(tp) == 6

        await consumer.commit({tp: 9})  # past what was fetched: left out
        assert await consumer.committed(tp) is None
        await consumer.commit({TopicPartition(topic, 999): 1})  # not assigned: left out, no error
        await consumer.commit({tp: 4})
        assert await consumer.committed(tp) == 4

        consumer.rewind(tp, 9)  # forward: left alone
        assert await consumer.position(tp) == 6
        consumer.rewind(tp, 2)
        again: list[int] = []

        async def read_again() -> bool:
            batch = await consumer.getmany(tp, timeout_ms=200)
            again.extend(r.offset for r in batch.get(tp, []))
            return len(again) >= 4

        await eventually(read_again, timeout_s=30)
        assert again[:4] == [2, 3, 4, 5]
    finally:
        await consumer.stop()
