"""Reading topics in tests: everything from the beginning, no consumer group."""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer

from shared.settings import KafkaSettings


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
