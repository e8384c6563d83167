"""In-memory fakes of what fanout's `BatchProcessor` produces to, commits on and records in
(`RecordSink`, `ConsumedOffsets`, `EventLogWriter` in services/fanout/processor.py); each
passes its contract suite (tests/integration/test_fanout_contracts.py, as the real aiokafka
client does; tests/integration/test_fanout_event_log_contract.py, as Postgres does)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from uuid import UUID

from aiokafka import TopicPartition
from aiokafka.errors import MessageSizeTooLargeError

from services.fanout.event_log import LoggedEvent
from shared.kafka.fences import fetched_within, may_rewind


class FakeProducer:
    """A `RecordSink` keeping what it was sent in `sent`, in order. `fail_with` fails the
    acks (of `fail_on`'s topic, or all); `too_large` refuses every record of that topic."""

    def __init__(
        self,
        *,
        fail_with: Exception | None = None,
        fail_on: str | None = None,
        too_large: str | None = None,
    ) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, list]] = []
        self._fail_with = fail_with
        self._fail_on = fail_on  # None: every topic
        self._too_large = too_large

    async def send(self, topic, value=None, key=None, headers=None):
        if topic == self._too_large:
            raise MessageSizeTooLargeError("too large")
        self.sent.append((topic, key, value, headers))
        ack = asyncio.get_running_loop().create_future()
        if self._fail_with is not None and self._fail_on in (None, topic):
            ack.set_exception(self._fail_with)
        else:
            ack.set_result(None)
        return ack


class FakeConsumer:
    """`ConsumedOffsets`: `commits` and `rewinds` in order, `committed` and `positions` now.

    With `fenced`, it keeps the real consumer's fences (shared/kafka/fences.py) over the
    positions `fetched` set; without, every commit and rewind goes through as asked (the
    processor's own order is what a unit test looks at)."""

    def __init__(self, *, fenced: bool = False) -> None:
        self.commits: list[dict[TopicPartition, int]] = []
        self.rewinds: list[tuple[TopicPartition, int]] = []
        self.committed: dict[TopicPartition, int] = {}
        self.positions: dict[TopicPartition, int] = {}
        self._fenced = fenced

    def fetched(self, partition: TopicPartition, up_to: int) -> None:
        self.positions[partition] = up_to

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if self._fenced:
            offsets, _ = fetched_within(offsets, self.positions)
        self.commits.append(dict(offsets))
        self.committed.update(offsets)

    def rewind(self, partition: TopicPartition, offset: int) -> None:
        if self._fenced and not may_rewind(offset, self.positions.get(partition)):
            return
        self.rewinds.append((partition, offset))
        self.positions[partition] = offset


class FakeEventLog:
    """`EventLogWriter`: `entries` by key (id, received_at) as Postgres keys them, the first of
    each kept; `writes` counts the calls that wrote; `fail_with` fails every write."""

    def __init__(self, *, fail_with: Exception | None = None) -> None:
        self.entries: dict[tuple[UUID, datetime], LoggedEvent] = {}
        self.writes = 0
        self._fail_with = fail_with

    async def record(self, entries: Sequence[LoggedEvent]) -> None:
        if self._fail_with is not None:
            raise self._fail_with
        if entries:
            self.writes += 1
        for entry in entries:
            self.entries.setdefault((entry.id, entry.received_at), entry)
