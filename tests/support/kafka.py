"""Reading topics in tests: everything from the beginning, no consumer group."""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.settings import KafkaSettings
from tests.support.polling import eventually


@dataclass(frozen=True)
class Record:
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    partition: int


async def read_topic(
    settings: KafkaSettings, topic: str, *, at_least: int, timeout_s: float = 15.0
) -> list[Record]:
    """All records of `topic` once at least `at_least` arrived; fails after `timeout_s`."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[Record] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < at_least:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{topic}: {len(records)} records within {timeout_s} s, wanted {at_least}"
                )
            batches = await consumer.getmany(timeout_ms=200)
            for tp, messages in batches.items():
                records.extend(
                    Record(m.key, m.value, dict(m.headers or ()), tp.partition) for m in messages
                )
        # Anything else already there (a duplicate would show here).
        for tp, messages in (await consumer.getmany(timeout_ms=300)).items():
            records.extend(
                Record(m.key, m.value, dict(m.headers or ()), tp.partition) for m in messages
            )
    finally:
        await consumer.stop()
    return records


async def read_namespace(settings: KafkaSettings) -> dict[str, list[Record]]:
    """Every record of every topic of `settings.topic_namespace`, from the beginning to the
    end each partition's last fetch reported (the fetch's highwater: Tansu's end_offsets is
    wrong, ARCHITECTURE.md). Call it once nothing writes any more."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=20,
    )
    await consumer.start()
    try:
        names = sorted(
            t for t in await consumer.topics() if t.startswith(settings.topic_namespace + ".")
        )
        partitions = [
            TopicPartition(name, p)
            for name in names
            for p in sorted(consumer.partitions_for_topic(name) or ())
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: dict[str, list[Record]] = {name: [] for name in names}

        async def at_end() -> bool:
            batches = await consumer.getmany(timeout_ms=100)
            for tp, messages in batches.items():
                records[tp.topic].extend(
                    Record(m.key, m.value, dict(m.headers or ()), tp.partition) for m in messages
                )
            for tp in partitions:
                highwater = consumer.highwater(tp)
                if highwater is None or await consumer.position(tp) < highwater:
                    return False
            return True

        await eventually(at_end, timeout_s=30, interval_s=0)
    finally:
        await consumer.stop()
    return records
