"""Fanout's loops: the events consumer (fetch a batch, hand it to the processor, which
produces, awaits the acks and the event log's write and commits, or rewinds) and the registry
feed's poll.

One batch is in flight while the next is fetched and routed: its acks, its event log write and
then its commit run meanwhile (or at a stop), and the next batch's offsets are committed only
after its. If the earlier batch fails, neither is committed and both are rewound; if the later
one fails to be routed or produced, both are rewound (the earlier may be committed already:
its work is durable, and reading it again is harmless).

Each loop runs until `stopping` is set; the batch in hand is finished first. What fails here
is the world's (the broker away, a bug): the step is retried with back-off, and /readyz turns
red past `retry_limit` failures in a row. An event that fails for its content never gets
here: the processor sends it to the DLQ.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from services.fanout.metrics import FanoutMetrics
from services.fanout.processor import Batch, BatchProcessor, InFlight
from services.fanout.registry_feed import RegistryFeed
from services.fanout.settings import FanoutSettings
from shared.readiness import FetchWatch, RetryWatch

log = structlog.get_logger(__name__)


class EventsSource(Protocol):
    """Where batches of events come from (the events consumer)."""

    async def getmany(self, *, timeout_ms: int, max_records: int) -> Batch: ...


class FanoutLoops:
    """Runs the registry and events loops; `retries` and `fetches` are what /readyz reads."""

    def __init__(
        self, settings: FanoutSettings, metrics: FanoutMetrics, stopping: asyncio.Event
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._stopping = stopping
        self.retries = {
            name: RetryWatch(f"the {name} loop", settings.retry_limit)
            for name in ("events", "registry")
        }
        self.fetches = FetchWatch("the events consumer", settings.fetch_stall_s)
        self._in_flight: InFlight | None = None

    async def serve(
        self, feed: RegistryFeed, events: AIOKafkaConsumer, processor: BatchProcessor
    ) -> None:
        """Both loops, until `stopping` is set; then the batch in flight is finished."""
        await asyncio.gather(
            self.run("registry", feed.poll),
            self.run("events", lambda: self.consume(events, processor)),
        )
        flight, self._in_flight = self._in_flight, None
        if flight is not None:
            try:
                await processor.finish(flight)
            except Exception as exc:  # noqa: BLE001 - logged; its events are read again
                log_failure("fanout.last_batch_failed", exc)

    async def consume(self, events: EventsSource, processor: BatchProcessor) -> None:
        """One fetch of the events topic, routed and produced; then the batch before it
        finished (committed, or both rewound and raised)."""
        batch = await events.getmany(
            timeout_ms=self._settings.poll_timeout_ms,
            max_records=self._settings.batch_max_records,
        )
        self.fetches.fetched(now=time.monotonic())
        previous, self._in_flight = self._in_flight, None
        try:
            flight = await processor.start(batch, after=previous)
        except BaseException:
            if previous is not None:
                await processor.abandon(previous)  # rewound after this batch: the earlier wins
            raise
        if previous is not None:
            try:
                await processor.finish(previous)
            except BaseException:
                if flight is not None:
                    await processor.abandon(flight)
                processor.rewind(previous.batch)  # again, last: its offsets are the earlier
                raise
        self._in_flight = flight

    async def run(self, name: str, step: Callable[[], Awaitable[object]]) -> None:
        """Run `step` until stopped. The one broad except: log, back off, keep serving."""
        watch = self.retries[name]
        while not self._stopping.is_set():
            try:
                await step()
            except Exception as exc:  # noqa: BLE001 - logged in log_failure; keep serving
                watch.failed(repr(exc))
                self._metrics.loop_failures.labels(name).inc()
                log_failure("fanout.loop_failed", exc, loop=name, failures=watch.failures)
                await backoff(self._settings, watch.failures, self._stopping)
            else:
                if watch.failures:
                    log.info("fanout.loop_recovered", loop=name, failures=watch.failures)
                watch.succeeded()


def log_failure(event: str, exc: Exception, **fields: object) -> None:
    """Broker trouble is expected now and then (no traceback); anything else is a bug."""
    if isinstance(exc, KafkaError):
        log.warning(event, error=repr(exc), **fields)
    else:
        log.exception(event, error=repr(exc), **fields)


async def backoff(settings: FanoutSettings, failures: int, stopping: asyncio.Event) -> None:
    """Wait after the `failures`-th failure in a row, doubling up to the cap; `stopping`
    cuts the wait short."""
    delay = min(settings.backoff_max_s, settings.backoff_min_s * 2 ** (failures - 1))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), timeout=delay)
