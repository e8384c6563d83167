"""The contracts fanout's processor relies on (`RecordSink`, `ConsumedOffsets` in
services/fanout/processor.py, `RecordBatches` in services/fanout/batches.py), run against the
fakes of its unit tests (tests/support/fanout_fakes.py) and the real aiokafka clients on the
test broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import MessageSizeTooLargeError

from services.fanout.batches import PartitionBatches, RecordBatches, SendEach
from services.fanout.partitioner import KeyHashPartitioner
from services.fanout.processor import ConsumedOffsets, RecordSink
from shared.kafka import JSON_HEADERS, Topics, make_consumer, make_producer
from shared.settings import KafkaSettings
from tests.support.fanout_fakes import FakeConsumer, FakeProducer
from tests.support.kafka import Record, read_topic

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


# --- RecordBatches --------------------------------------------------------------------------


@dataclass
class Batches:
    make: Callable[..., RecordBatches]  # a new one; max_request_size= for the real one
    read: Callable[[str, int], Awaitable[list[Record]]]  # a topic's records, at least n
    send: RecordSink  # what sends one record at a time, for the partition it picks


@pytest.fixture
async def batches(kafka_or_fake: KafkaSettings | None) -> AsyncIterator[Batches]:
    if kafka_or_fake is None:
        fake = FakeProducer(too_large="ns.too-large")

        async def sent(topic: str, at_least: int) -> list[Record]:
            return [Record(k, v, dict(h or ()), 0) for t, k, v, h in fake.sent if t == topic]

        yield Batches(lambda **_: SendEach(fake), sent, fake)
        return
    settings = kafka_or_fake
    partitioner = KeyHashPartitioner()
    # Small batches, so that records of one key span several of them.
    producer = make_producer(settings, partitioner=partitioner, max_batch_size=1024)
    await producer.start()

    def make(max_request_size: int = 1024 * 1024) -> RecordBatches:
        return PartitionBatches(
            producer, partitioner=partitioner, max_request_size=max_request_size
        )

    async def read(topic: str, at_least: int) -> list[Record]:
        return await read_topic(settings, topic, at_least=at_least)

    try:
        yield Batches(make, read, producer)
    finally:
        await producer.stop()


async def test_flushed_records_are_acknowledged_in_their_topic_with_key_value_and_headers(
    batches, kafka_or_fake
):
    topic = topic_of(kafka_or_fake)
    records = batches.make()
    await records.add(topic, b"w1", b'{"a":1}', JSON_HEADERS)
    await records.add(topic, b"w2", b'{"a":2}', JSON_HEADERS)
    await asyncio.gather(*await records.flush())
    got = {(r.key, r.value, tuple(r.headers.items())) for r in await batches.read(topic, 2)}
    headers = tuple(dict(JSON_HEADERS).items())
    assert got == {(b"w1", b'{"a":1}', headers), (b"w2", b'{"a":2}', headers)}


async def test_records_of_one_key_arrive_in_the_order_added_across_many_batches(
    batches, kafka_or_fake
):
    topic = topic_of(kafka_or_fake)
    records = batches.make()
    for n in range(300):  # ~100 bytes each: several batches of 1 KiB per key
        await records.add(topic, b"w%d" % (n % 3), b"%d" % n + b"x" * 90, JSON_HEADERS)
    await asyncio.gather(*await records.flush())
    got = await batches.read(topic, 300)
    for key in (b"w0", b"w1", b"w2"):
        values = [int(r.value.rstrip(b"x")) for r in got if r.key == key]
        assert values == list(range(int(key[1:]), 300, 3))


async def test_a_record_too_large_for_a_request_is_refused_and_the_others_still_sent(
    batches, kafka_or_fake
):
    topic = topic_of(kafka_or_fake)
    big_topic = "ns.too-large" if kafka_or_fake is None else topic
    records = batches.make(max_request_size=4096)
    await records.add(topic, b"w1", b"small", JSON_HEADERS)
    with pytest.raises(MessageSizeTooLargeError):
        await records.add(big_topic, b"w1", b"x" * 8192, JSON_HEADERS)
    await records.add(topic, b"w1", b"after", JSON_HEADERS)
    await asyncio.gather(*await records.flush())
    assert [r.value for r in await batches.read(topic, 2)] == [b"small", b"after"]


async def test_each_key_goes_to_the_partition_a_record_sent_alone_goes_to(kafka_settings):
    topics = Topics.from_settings(kafka_settings)
    partitioner = KeyHashPartitioner()
    producer = make_producer(kafka_settings, partitioner=partitioner)
    await producer.start()
    try:
        keys = [str(uuid.uuid4()).encode() for _ in range(60)]
        records = PartitionBatches(producer, partitioner=partitioner, max_request_size=2**20)
        for key in keys:
            await records.add(topics.deliveries, key, b"batched", JSON_HEADERS)
        # aiokafka's own producer, with its default partitioner, one record at a time.
        plain = make_producer(kafka_settings)
        await plain.start()
        try:
            acks = [await plain.send(topics.workflow_runs, b"alone", key=key) for key in keys]
            await asyncio.gather(*acks, *await records.flush())
        finally:
            await plain.stop()
    finally:
        await producer.stop()
    batched = {
        r.key: r.partition for r in await read_topic(kafka_settings, topics.deliveries, at_least=60)
    }
    alone = {
        r.key: r.partition
        for r in await read_topic(kafka_settings, topics.workflow_runs, at_least=60)
    }
    assert batched == alone
    assert len(set(alone.values())) > 1  # the keys spread: the test can tell partitions apart


# --- ConsumedOffsets ------------------------------------------------------------------------


@dataclass
class Offsets:
    offsets: ConsumedOffsets
    tp: TopicPartition
    committed: Callable[[], Awaitable[int | None]]  # where the group resumes the partition
    next_fetch: Callable[[], Awaitable[int]]  # the offset the next fetch starts at
    fetch_all: Callable[[], Awaitable[None]]  # fetch the partition's five records


@pytest.fixture
async def offsets(kafka_or_fake: KafkaSettings | None) -> AsyncIterator[Offsets]:
    if kafka_or_fake is None:
        fake, tp = FakeConsumer(fenced=True), TopicPartition("ns.events", 0)

        async def committed() -> int | None:
            return fake.committed.get(tp)

        async def position() -> int:
            return fake.positions.get(tp, 0)

        async def fetch_five() -> None:
            fake.fetched(tp, 5)

        yield Offsets(fake, tp, committed, position, fetch_five)
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

    async def fetch_all() -> None:
        while await consumer.position(tp) < 5:
            await consumer.getmany(tp, timeout_ms=200)

    try:
        yield Offsets(consumer, tp, lambda: consumer.committed(tp), next_fetch, fetch_all)
    finally:
        await consumer.stop()


async def test_a_committed_offset_is_where_the_group_resumes(offsets):
    await offsets.fetch_all()
    await offsets.offsets.commit({offsets.tp: 3})
    assert await offsets.committed() == 3
    await offsets.offsets.commit({offsets.tp: 4})
    assert await offsets.committed() == 4


async def test_an_offset_past_what_was_fetched_is_not_committed(offsets):
    await offsets.offsets.commit({offsets.tp: 3})  # as a batch fetched before a rebalance would
    assert await offsets.committed() is None


async def test_a_rewind_makes_the_next_fetch_start_at_that_offset(offsets):
    await offsets.fetch_all()
    offsets.offsets.rewind(offsets.tp, 2)
    assert await offsets.next_fetch() == 2
    offsets.offsets.rewind(offsets.tp, 1)  # back again: the earlier of two failed batches
    assert await offsets.next_fetch() == 1


async def test_a_rewind_past_what_was_fetched_moves_nothing(offsets):
    offsets.offsets.rewind(offsets.tp, 3)  # nothing fetched yet: the group's start stands
    assert await offsets.next_fetch() == 0
