"""The contracts fanout's processor relies on (`RecordSink`, `ConsumedOffsets` in
services/fanout/processor.py), run against the fakes of its unit tests
(tests/support/fanout_fakes.py) and the real aiokafka clients on the test broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from aiokafka import TopicPartition

from services.fanout.processor import ConsumedOffsets, RecordSink
from shared.kafka import JSON_HEADERS, Topics, make_consumer, make_producer
from shared.settings import KafkaSettings
from tests.support.fanout_fakes import FakeConsumer, FakeProducer
from tests.support.kafka import read_topic

pytestmark = pytest.mark.integration

Sent = tuple[bytes | None, bytes | None, dict[str, bytes]]


@pytest.fixture(params=["fake", "real"])
def kafka_or_fake(request: pytest.FixtureRequest) -> KafkaSettings | None:
    """The test's broker namespace for the real clients; None for the fakes."""
    return request.getfixturevalue("kafka_settings") if request.param == "real" else None


# --- RecordSink -----------------------------------------------------------------------------


@dataclass
class Sink:
    sink: RecordSink
    read: Callable[[str, int], Awaitable[list[Sent]]]  # a topic's records, at least n


@pytest.fixture
async def sink(kafka_or_fake: KafkaSettings | None) -> AsyncIterator[Sink]:
    if kafka_or_fake is None:
        fake = FakeProducer()

        async def sent(topic: str, at_least: int) -> list[Sent]:
            return [(k, v, dict(h or ())) for t, k, v, h in fake.sent if t == topic]

        yield Sink(fake, sent)
        return
    settings = kafka_or_fake
    producer = make_producer(settings)
    await producer.start()

    async def read(topic: str, at_least: int) -> list[Sent]:
        records = await read_topic(settings, topic, at_least=at_least)
        return [(r.key, r.value, r.headers) for r in records]

    try:
        yield Sink(producer, read)
    finally:
        await producer.stop()


def topic_of(kafka_or_fake: KafkaSettings | None) -> str:
    return Topics.from_settings(kafka_or_fake).deliveries if kafka_or_fake else "ns.deliveries"


async def test_an_acknowledged_record_is_in_its_topic_with_its_key_value_and_headers(
    sink, kafka_or_fake
):
    topic = topic_of(kafka_or_fake)
    ack = await sink.sink.send(topic, value=b'{"a":1}', key=b"w1", headers=JSON_HEADERS)
    await ack
    assert await sink.read(topic, 1) == [(b"w1", b'{"a":1}', dict(JSON_HEADERS))]


async def test_records_of_one_key_arrive_in_the_order_sent(sink, kafka_or_fake):
    topic = topic_of(kafka_or_fake)
    acks = [await sink.sink.send(topic, value=b"%d" % n, key=b"w1") for n in range(5)]
    await asyncio.gather(*acks)
    assert [value for _, value, _ in await sink.read(topic, 5)] == [b"%d" % n for n in range(5)]


# --- ConsumedOffsets ------------------------------------------------------------------------


@dataclass
class Offsets:
    offsets: ConsumedOffsets
    tp: TopicPartition
    committed: Callable[[], Awaitable[int | None]]  # where the group resumes the partition
    next_fetch: Callable[[], Awaitable[int]]  # the offset the next fetch starts at


@pytest.fixture
async def offsets(kafka_or_fake: KafkaSettings | None) -> AsyncIterator[Offsets]:
    if kafka_or_fake is None:
        fake, tp = FakeConsumer(), TopicPartition("ns.events", 0)

        async def committed() -> int | None:
            return fake.committed.get(tp)

        async def position() -> int:
            return fake.positions.get(tp, 0)

        yield Offsets(fake, tp, committed, position)
        return
    settings = kafka_or_fake
    tp = TopicPartition(Topics.from_settings(settings).events, 0)
    producer = make_producer(settings)
    await producer.start()
    try:
        await asyncio.gather(
            *[await producer.send(tp.topic, b"%d" % n, partition=0) for n in range(5)]
        )
    finally:
        await producer.stop()
    consumer = make_consumer(settings, group_id=f"contract-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    consumer.assign([tp])

    async def next_fetch() -> int:
        for _ in range(100):
            batch = await consumer.getmany(tp, timeout_ms=200)
            if batch.get(tp):
                return batch[tp][0].offset
        raise AssertionError("nothing fetched")

    try:
        yield Offsets(consumer, tp, lambda: consumer.committed(tp), next_fetch)
    finally:
        await consumer.stop()


async def test_a_committed_offset_is_where_the_group_resumes(offsets):
    await offsets.offsets.commit({offsets.tp: 3})
    assert await offsets.committed() == 3
    await offsets.offsets.commit({offsets.tp: 4})
    assert await offsets.committed() == 4


async def test_a_seek_makes_the_next_fetch_start_at_that_offset(offsets):
    offsets.offsets.seek(offsets.tp, 2)
    assert await offsets.next_fetch() == 2
    offsets.offsets.seek(offsets.tp, 1)  # back: the rewind of a failed batch
    assert await offsets.next_fetch() == 1
