"""Part 12: the dev broker alone, started fresh for each case, with none of our services in
the way: what storing and reading `rate` events a second costs it.

Each case starts a new broker (memory only, so it starts empty), creates one topic of the dev
stack's partitions, and publishes `rate` events a second for `duration_s` as part 4's
publisher does (the services' producer settings, one key per room over 50 rooms). The
broker's CPU is read per slice of `slice_s`. The cases:
- `producer only`: what storing costs;
- `one reader`: a consumer group reading as the events come, made and committing as the
  services' are (`shared.kafka.make_consumer`, each batch committed);
- `one reader, fetch_min_bytes 64 KiB`: the same, asking the broker to hold each fetch
  until 64 KiB are there (fewer fetches answered).
On real Kafka a fetch reads from an offset index; the dev broker scans every batch stored in
the partition (ARCHITECTURE.md), so what a reader costs it grows as the run goes on, and the
slices show by how much. Our services run three such readers on busy topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import psutil
from aiokafka.admin import NewTopic

from devtool.broker import TANSU_GAP_RECHECK_MS
from shared.kafka import make_consumer
from shared.kafka.topic_setup import make_admin
from shared.settings import KafkaSettings
from tests.bench.load import EventPublisher, Target
from tests.bench.processes import Processes, cpu_s
from tests.bench.stack import start_broker

TOPIC = "broker-bench.events"
JOIN_TIMEOUT_S = 30.0
ROOMS = [Target("00000000-0000-4000-8000-000000000001", f"room-{n}") for n in range(50)]
# (case, fetch_min_bytes of its reader; None: no reader)
CASES: tuple[tuple[str, int | None], ...] = (
    ("producer only", None),
    ("one reader", 1),
    ("one reader, fetch_min_bytes 64 KiB", 64 * 1024),
)


@dataclass(frozen=True)
class Load:
    """What each case publishes: `rate` events/s for `duration_s` to a topic of `partitions`;
    the broker's CPU is read every `slice_s`."""

    partitions: int
    rate: float
    duration_s: float
    slice_s: float


async def broker_run(processes: Processes, load: Load, *, progress: Callable[[str], None]) -> dict:
    cases = {}
    for case, min_bytes in CASES:
        cases[case] = await _case(processes, case, min_bytes, load, progress)
    return {**asdict(load), "cases": cases}


async def _case(
    processes: Processes,
    case: str,
    min_bytes: int | None,
    load: Load,
    progress: Callable[[str], None],
) -> dict:
    """One case on a broker of its own, stopped after it."""
    broker, bootstrap = await start_broker(processes, "broker_alone", dict(os.environ))
    try:
        settings = KafkaSettings(
            bootstrap_servers=bootstrap,
            partitions=load.partitions,
            gap_recheck_ms=TANSU_GAP_RECHECK_MS,
        )
        admin = make_admin(settings)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(TOPIC, load.partitions, 1)])
        finally:
            await admin.close()
        async with contextlib.AsyncExitStack() as stack:
            reader = None
            if min_bytes is not None:
                reader = await stack.enter_async_context(_Reader(settings, min_bytes))
            publisher = await stack.enter_async_context(EventPublisher(settings, TOPIC))
            slices = await _publish_by_slice(
                publisher,
                psutil.Process(broker.pid),
                load,
                progress=lambda s: progress(f"{case}: {s:.0f}/{load.duration_s:.0f} s"),
            )
        return {
            "broker_cpu_percent": round(sum(slices) / len(slices), 1) if slices else None,
            "broker_cpu_percent_by_slice": slices,
            "published": publisher.published.events,
            "read": reader.records if reader is not None else None,
            "batches_read": reader.batches if reader is not None else None,
        }
    finally:
        await asyncio.to_thread(processes.stop, [broker], grace_s=2.0)


class _Reader:
    """A consumer group reading the topic in the background, made as the services make theirs
    and committing each batch as they do, from its first assignment until the `async with`
    ends."""

    def __init__(self, settings: KafkaSettings, min_bytes: int) -> None:
        self._consumer = make_consumer(
            settings, TOPIC, group_id="broker-bench", fetch_min_bytes=min_bytes
        )
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.records = 0
        self.batches = 0

    async def __aenter__(self) -> _Reader:
        await self._consumer.start()
        self._task = asyncio.create_task(self._read(), name="broker-bench reader")
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        while not self._consumer.assignment():  # the group joined: reading from here on
            if self._task.done() or time.monotonic() > deadline:
                await self.__aexit__()
                raise RuntimeError("the broker bench's reader was assigned no partition")
            await asyncio.sleep(0.1)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stopping.set()
        try:
            if self._task is not None:
                await self._task
        finally:
            await self._consumer.stop()

    async def _read(self) -> None:
        while not self._stopping.is_set():
            batch = await self._consumer.getmany(timeout_ms=500)
            records = sum(len(records) for records in batch.values())
            if records:
                self.records += records
                self.batches += 1
                await self._consumer.commit()


async def _publish_by_slice(
    publisher: EventPublisher,
    process: psutil.Process,
    load: Load,
    *,
    progress: Callable[[float], None],
) -> list[float]:
    """Publish at the load's rate for its duration; the broker's CPU % of a core in each
    slice."""
    rate, duration_s, slice_s = load.rate, load.duration_s, load.slice_s
    publishing = asyncio.create_task(publisher.at_rate(ROOMS, rate=rate, duration_s=duration_s))
    slices: list[float] = []
    started = time.monotonic()
    last_t, last_cpu = started, cpu_s(process)
    while not publishing.done():
        await asyncio.wait({publishing}, timeout=slice_s)
        now, cpu = time.monotonic(), cpu_s(process)
        if now - last_t >= slice_s / 2:  # a last sliver of a slice tells nothing
            slices.append(round(100 * (cpu - last_cpu) / (now - last_t), 1))
        last_t, last_cpu = now, cpu
        progress(now - started)
    await publishing
    return slices
