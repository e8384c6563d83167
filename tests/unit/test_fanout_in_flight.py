"""One batch in flight: its acks, event log write and then commit run while the next batch is
fetched and routed, and it is committed first; if it fails, both are rewound (fakes, no
broker)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from aiokafka.errors import CommitFailedError

from services.fanout.consumer import FanoutLoops
from services.fanout.metrics import FanoutMetrics
from services.fanout.processor import EVENTS_BETWEEN_PAUSES
from services.fanout.settings import FanoutSettings
from tests.support.fanout_fakes import FakeConsumer, FakeEventLog, FakeProducer
from tests.unit.test_fanout_processor import TP0, TP1, joined, message, processor


class Batches:
    """An events consumer handing out these batches, then nothing."""

    def __init__(self, *batches) -> None:
        self._batches = list(batches)

    async def getmany(self, *, timeout_ms: int, max_records: int):
        return self._batches.pop(0) if self._batches else {}


class GatedLog(FakeEventLog):
    """An event log whose writes wait for `open`; `fail` fails the next write."""

    def __init__(self) -> None:
        super().__init__()
        self.open = asyncio.Event()
        self.fail: Exception | None = None

    async def record(self, entries) -> None:
        await self.open.wait()
        failure, self.fail = self.fail, None
        if failure is not None:
            raise failure
        await super().record(entries)


class RoundTrips(FakeEventLog):
    """An event log whose write takes `trips` turns of the loop (a query, then the connection's
    reset), noting how many records the producer held when it was through."""

    def __init__(self, producer: FakeProducer, trips: int) -> None:
        super().__init__()
        self._producer, self._trips = producer, trips
        self.through_at: list[int] = []

    async def record(self, entries) -> None:
        for _ in range(self._trips):
            await asyncio.sleep(0)
        await super().record(entries)
        self.through_at.append(len(self._producer.sent))


def loops(stopping: asyncio.Event | None = None) -> FanoutLoops:
    return FanoutLoops(FanoutSettings(), FanoutMetrics.create(), stopping or asyncio.Event())


FIRST = {TP0: [message(TP0, 10, joined()), message(TP0, 11, joined())]}
SECOND = {TP0: [message(TP0, 12, joined())], TP1: [message(TP1, 3, joined())]}


async def test_a_batch_is_committed_after_its_write_and_before_the_next_one():
    consumer, log = FakeConsumer(), GatedLog()
    work, loop = processor(FakeProducer(), consumer, events=log), loops()
    source = Batches(FIRST, SECOND)
    await loop.consume(source, work)  # FIRST routed, its write waiting
    assert consumer.commits == []
    second = asyncio.create_task(loop.consume(source, work))  # SECOND routed, FIRST awaited
    for _ in range(5):
        await asyncio.sleep(0)
    assert consumer.commits == []  # both writes waiting
    log.open.set()
    await second  # FIRST committed; SECOND's commit in flight, after it
    await loop.consume(source, work)  # nothing more: SECOND finished
    assert consumer.commits == [{TP0: 12}, {TP0: 13, TP1: 4}]
    assert len(log.entries) == 4


class OneGatePerWrite(FakeEventLog):
    """An event log whose n-th write waits for `gates[n]`."""

    def __init__(self, writes: int) -> None:
        super().__init__()
        self.gates = [asyncio.Event() for _ in range(writes)]
        self._calls = 0

    async def record(self, entries) -> None:
        gate, self._calls = self.gates[self._calls], self._calls + 1
        await gate.wait()
        await super().record(entries)


async def test_a_batch_written_first_is_committed_after_the_batch_before_it():
    consumer, log = FakeConsumer(), OneGatePerWrite(2)
    work, loop = processor(FakeProducer(), consumer, events=log), loops()
    source = Batches(FIRST, SECOND)
    await loop.consume(source, work)
    second = asyncio.create_task(loop.consume(source, work))
    log.gates[1].set()  # SECOND's write through, FIRST's still waiting
    for _ in range(5):
        await asyncio.sleep(0)
    assert consumer.commits == []
    log.gates[0].set()
    await second
    await loop.consume(source, work)
    assert consumer.commits == [{TP0: 12}, {TP0: 13, TP1: 4}]


class FailingCommits(FakeConsumer):
    """A consumer whose next commit fails with `fail`."""

    def __init__(self) -> None:
        super().__init__()
        self.fail: Exception | None = None

    async def commit(self, offsets) -> None:
        failure, self.fail = self.fail, None
        if failure is not None:
            raise failure
        await super().commit(offsets)


async def test_a_failed_commit_commits_neither_batch_and_rewinds_to_the_earlier():
    consumer, log = FailingCommits(), GatedLog()
    work, loop = processor(FakeProducer(), consumer, events=log), loops()
    source = Batches(FIRST, SECOND)
    await loop.consume(source, work)
    consumer.fail = CommitFailedError("rebalanced")
    log.open.set()
    with pytest.raises(CommitFailedError):
        await loop.consume(source, work)
    assert consumer.commits == []
    assert consumer.positions == {TP0: 10, TP1: 3}


async def test_a_failed_write_commits_neither_batch_and_rewinds_to_the_earlier():
    consumer, log = FakeConsumer(), GatedLog()
    work, loop = processor(FakeProducer(), consumer, events=log), loops()
    source = Batches(FIRST, SECOND)
    await loop.consume(source, work)
    log.fail = asyncpg.PostgresConnectionError("away")
    log.open.set()
    with pytest.raises(asyncpg.PostgresConnectionError):
        await loop.consume(source, work)
    assert consumer.commits == []
    assert consumer.positions == {TP0: 10, TP1: 3}


async def test_the_batch_in_flight_is_finished_when_the_loops_stop():
    consumer, log, stopping = FakeConsumer(), GatedLog(), asyncio.Event()
    work, loop = processor(FakeProducer(), consumer, events=log), loops(stopping)
    await loop.consume(Batches(FIRST), work)
    log.open.set()

    class Idle:
        async def poll(self) -> None: ...

    stopping.set()  # the loops end at once; the batch in flight is finished
    await loop.serve(Idle(), Batches(), work)
    assert consumer.commits == [{TP0: 12}]


async def test_the_batch_in_flight_is_written_while_the_next_one_is_routed():
    producer = FakeProducer()
    log = RoundTrips(producer, trips=2)
    work, loop = processor(producer, FakeConsumer(), events=log), loops()
    many = 4 * EVENTS_BETWEEN_PAUSES
    second = {TP1: [message(TP1, offset, joined()) for offset in range(many)]}
    await loop.consume(Batches(FIRST, second), work)  # FIRST routed and produced
    assert len(producer.sent) == 2
    await loop.consume(Batches(second), work)  # FIRST's write runs during SECOND's routing
    assert log.through_at[0] < 2 + many  # through before SECOND's last record was produced
