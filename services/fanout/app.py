"""The one place that builds fanout's Kafka clients, Postgres pool and probe server, and
wires them to the loops (`consumer.FanoutLoops`).

`Fanout` runs in-process (tests use `async with Fanout(settings) as fanout:`); `run` is what
`python -m services.fanout` calls: it retries start-up while the broker is away and serves
until SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from types import TracebackType

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer

from services.fanout import SCHEMA
from services.fanout.batches import PartitionBatches
from services.fanout.consumer import FanoutLoops, backoff, log_failure
from services.fanout.index import SubscriptionIndex, Subscriptions
from services.fanout.metrics import FanoutMetrics
from services.fanout.partitioner import KeyHashPartitioner
from services.fanout.processor import BatchProcessor
from services.fanout.registry_feed import RegistryFeed
from services.fanout.repository import PostgresEventLog
from services.fanout.retention import PLAN
from services.fanout.settings import FanoutSettings
from shared.db import create_pool, prepare_schema
from shared.health import start_health_server
from shared.kafka import (
    Topics,
    broker_check,
    ensure_topics,
    make_consumer,
    make_producer,
    stop_quietly,
)
from shared.lifecycle import freeze_startup_heap, stop_requested, tune_collector
from shared.retention import retention_loop
from shared.tracing import Tracing, build_tracing

log = structlog.get_logger(__name__)

# The largest request the producer sends (aiokafka's default): a record above it goes to the
# DLQ (processor.py), as the broker would never take it.
MAX_REQUEST_SIZE = 1024 * 1024


def utcnow() -> datetime:
    return datetime.now(UTC)


class Fanout:
    """Registry indexes + events consumer + producer + event log, as one unit with a start and
    a stop.

    `start()` returns once the index is loaded and the events consumer is subscribed (ready);
    `run_until_stopped()` serves until `stop()`; then the batch in hand is finished and
    committed, and every client is closed. Delivery is at-least-once.
    """

    def __init__(
        self,
        settings: FanoutSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
        tracing: Tracing | None = None,
    ) -> None:
        """`tracing` None: built from `settings.tracing` at start (off without an endpoint)."""
        self.settings = settings
        self._tracing = tracing
        self.topics = Topics.from_settings(settings.kafka)
        self.indexes = Subscriptions()
        self.metrics = FanoutMetrics.create()
        self._clock = clock
        self._stack = AsyncExitStack()
        self._stopping = asyncio.Event()
        self._feed: RegistryFeed | None = None
        self._events: AIOKafkaConsumer | None = None
        self._processor: BatchProcessor | None = None
        self.loops = FanoutLoops(settings, self.metrics, self._stopping)
        self._task: asyncio.Task[None] | None = None
        self._running = False

    @property
    def ready(self) -> bool:
        return self._processor is not None and not self._stopping.is_set()

    @property
    def index(self) -> SubscriptionIndex:
        """The webhook index (the name predates workflows; see `indexes`)."""
        return self.indexes.webhooks

    @property
    def workflows(self) -> SubscriptionIndex:
        return self.indexes.workflows

    @property
    def index_size(self) -> int:
        """Webhooks held, enabled or not (`workflows_size` for workflows)."""
        return len(self.indexes.webhooks)

    @property
    def workflows_size(self) -> int:
        return len(self.indexes.workflows)

    async def readiness(self) -> dict[str, str]:
        loaded = self._feed is not None and self._feed.loaded
        has_work = self._events is not None and bool(self._events.assignment())
        events = [  # the first that is not "ok" says why
            self.loops.retries["events"].check(),
            self.loops.fetches.check(now=time.monotonic(), has_work=has_work),
            "ok" if self.ready else "not_consuming",
        ]
        checks = {
            "index": "ok" if loaded else "loading",
            "events": next((check for check in events if check != "ok"), "ok"),
            "registry": self.loops.retries["registry"].check(),
        }
        if self._events is not None:
            checks["broker"] = await broker_check(
                self._events, [self.topics.events, self.topics.deliveries]
            )
        return checks

    async def start(self) -> None:
        """Build the clients, load the indexes to the end of the registry, then subscribe."""
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            self._stack = AsyncExitStack()
            raise

    async def _start_postgres(self) -> asyncpg.Pool:
        """The pool, the event log's schema and partitions, and retention when this service
        holds the owner role (it migrates on start); else the retention CronJob runs it."""
        settings = self.settings.postgres
        pool = await create_pool(settings)
        self._stack.push_async_callback(stop_quietly, "postgres", pool.close)
        async with pool.acquire() as conn:
            await prepare_schema(
                conn,
                settings,
                schema=SCHEMA,
                package="services.fanout",
                plan=PLAN,
                production=self.settings.runtime.production,
            )
        if settings.migrate_on_start:
            retention = asyncio.create_task(retention_loop(pool, PLAN, settings), name="retention")
            self._stack.push_async_callback(cancelled, retention)
        return pool

    async def _start(self) -> None:
        settings, kafka = self.settings, self.settings.kafka
        tracing = self._tracing
        if tracing is None:
            # The producer's traceparent is untrusted: it cannot decide our sampling.
            tracing = build_tracing(settings.tracing, service="fanout", untrusted_parents=True)
            self._stack.callback(tracing.shutdown)
        pool = await self._start_postgres()
        await ensure_topics(kafka, self.topics)
        runner = await start_health_server(
            self.readiness,
            self.metrics.registry,
            host=settings.health_host,
            port=settings.health_port,
        )
        if runner is not None:
            self._stack.push_async_callback(stop_quietly, "health", runner.cleanup)
        # A batch's records are all handed over before anything is awaited, so no linger is
        # needed to batch them; large batches keep the broker's batch count down (the dev
        # broker's fetches cost more with every batch it stores).
        # KeyHashPartitioner: aiokafka's choice of partition, at half its CPU per record.
        partitioner = KeyHashPartitioner()
        producer = make_producer(
            kafka,
            linger_ms=0,
            max_batch_size=256 * 1024,
            partitioner=partitioner,
            max_request_size=MAX_REQUEST_SIZE,
        )
        await producer.start()
        self._stack.push_async_callback(stop_quietly, "producer", producer.stop)

        registry_consumer = make_consumer(kafka, group_id=None, background=True)
        await registry_consumer.start()
        self._stack.push_async_callback(stop_quietly, "registry_consumer", registry_consumer.stop)
        feed = RegistryFeed(
            registry_consumer,
            self.topics.registry,
            self.indexes,
            self.metrics,
            max_records=settings.batch_max_records,
            poll_timeout_ms=settings.poll_timeout_ms,
        )
        self._feed = feed
        await feed.load()  # no matching before the indexes hold the whole registry

        events = make_consumer(kafka, self.topics.events, group_id=self.topics.group("fanout"))
        await events.start()
        self._stack.push_async_callback(stop_quietly, "events_consumer", events.stop)
        self._events = events
        self._processor = BatchProcessor(
            events,
            producer,
            self.topics,
            self.indexes,
            self.metrics,
            self._clock,
            events=PostgresEventLog(pool),
            retention=timedelta(days=settings.postgres.retention_days),
            tracing=tracing,
            batches=lambda: PartitionBatches(
                producer, partitioner=partitioner, max_request_size=MAX_REQUEST_SIZE
            ),
        )
        log.info(
            "fanout.started",
            group=self.topics.group("fanout"),
            webhooks=self.index_size,
            workflows=self.workflows_size,
        )

    def stop(self) -> None:
        """Ask the loops to finish the batch in hand and return (safe from a signal handler)."""
        if not self._stopping.is_set():
            log.info("fanout.stopping", reason="no more fetches; the batch in hand is finished")
        self._stopping.set()

    async def run_until_stopped(self) -> None:
        """Serve until `stop()`; then close every client. Call after `start()`."""
        if self._feed is None or self._events is None or self._processor is None:
            raise RuntimeError("Fanout.start() must succeed first")
        if self._running:
            raise RuntimeError("Fanout is already running")
        self._running = True
        try:
            await self.loops.serve(self._feed, self._events, self._processor)
        finally:
            await self._stack.aclose()
            log.info("fanout.stopped")

    async def __aenter__(self) -> Fanout:
        await self.start()
        self._task = asyncio.create_task(self.run_until_stopped(), name="fanout")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if self._task is not None:
            await self._task


async def cancelled(task: asyncio.Task[None]) -> None:
    """Cancel `task` and wait for it to end (at shutdown, before the pool it uses closes)."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def run(settings: FanoutSettings) -> None:
    """Serve until SIGTERM or SIGINT; a broker that is down at start is waited for."""
    stopping = stop_requested()
    tune_collector()
    fanout = await _start_with_retries(settings, stopping)
    if fanout is None:
        return
    # The loaded indexes are most of the process's objects (370,000 for 100k webhooks) and
    # live as long as it does: frozen, full collections no longer walk them (the collector's
    # share of fanout's CPU per event: 4.4 us -> 1.4 us).
    freeze_startup_heap()
    serving = asyncio.create_task(fanout.run_until_stopped(), name="fanout")
    stop_wait = asyncio.create_task(stopping.wait())
    await asyncio.wait({serving, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    fanout.stop()
    stop_wait.cancel()
    await serving


async def _start_with_retries(settings: FanoutSettings, stopping: asyncio.Event) -> Fanout | None:
    """A started Fanout, or None when asked to stop first (a start in progress is cancelled)."""
    failures = 0
    while not stopping.is_set():
        fanout = Fanout(settings)
        starting = asyncio.create_task(fanout.start(), name="fanout-start")
        stop_wait = asyncio.create_task(stopping.wait())
        await asyncio.wait({starting, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starting
            return None
        try:
            starting.result()
            return fanout
        except Exception as exc:  # noqa: BLE001 - logged in log_failure; retry
            failures += 1
            log_failure("fanout.start_failed", exc, failures=failures)
            await backoff(settings, failures, stopping)
    return None
