"""One batch in flight: its acks and event log write finish while the next batch is fetched
and routed, and it is committed first; if either fails, both are rewound (fakes, no broker)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

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
    log.open.set()
    await loop.consume(source, work)  # SECOND routed; FIRST finished
    assert consumer.commits == [{TP0: 12}]
    await loop.consume(source, work)  # nothing more: SECOND finished
    assert consumer.commits == [{TP0: 12}, {TP0: 13, TP1: 4}]
    assert len(log.entries) == 4


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
