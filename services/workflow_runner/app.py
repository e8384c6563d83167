"""The one place that builds the runner's pool, sandbox, HTTP client and consumers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import aiohttp
import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer

from services.workflow_runner.bindings import Fetcher
from services.workflow_runner.connection_shares import ConnectionShares, share_of
from services.workflow_runner.executions import PostgresExecutions
from services.workflow_runner.projection_consumer import ProjectionConsumer
from services.workflow_runner.projection_store import PostgresProjection
from services.workflow_runner.retention import PLAN
from services.workflow_runner.run_consumer import RunConsumer
from services.workflow_runner.sandbox import Sandbox, SandboxSettings
from services.workflow_runner.service import RunnerMetrics, RunnerService
from services.workflow_runner.settings import RunnerSettings
from shared.db import create_pool, postgres_check, prepare_schema
from shared.guarded_resolver import GuardedResolver
from shared.health import start_health_server
from shared.kafka import (
    Topics,
    broker_check,
    ensure_topics,
    make_consumer,
    make_producer,
    stop_quietly,
)
from shared.kafka.lag import service_metrics
from shared.lifecycle import run_until_signalled
from shared.retention import retention_loop
from shared.ssrf import AddressPolicy
from shared.tracing import Tracing, build_tracing

log = structlog.get_logger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


def sandbox_settings(settings: RunnerSettings) -> SandboxSettings:
    return SandboxSettings(
        max_hosts=settings.max_hosts,
        wall_timeout_s=settings.wall_timeout_s,
        cpu_limit_ms=settings.cpu_limit_ms,
        heap_mb=settings.heap_mb,
        memory_max_mb=settings.memory_max_mb,
        max_result_bytes=settings.max_result_bytes,
        max_log_bytes=settings.max_log_bytes,
        max_fetches_per_run=settings.max_fetches_per_run,
        pids_max=settings.pids_max,
        cgroup_parent=settings.cgroup_parent,
    )


class Runner:
    """The running service: `start()` builds everything, `stop()` drains and closes."""

    def __init__(
        self,
        settings: RunnerSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
        tracing: Tracing | None = None,
    ):
        """`tracing` None: built from `settings.tracing` (off without an endpoint)."""
        self.settings = settings
        self._tracing = tracing
        self.topics = Topics.from_settings(settings.kafka)
        self.metrics_registry = service_metrics()
        self._metrics = RunnerMetrics(self.metrics_registry)
        self._clock = clock
        self._stack = AsyncExitStack()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.service: RunnerService | None = None
        self.sandbox: Sandbox | None = None
        # The two consumers' loops, built in start(); each keeps the watches /readyz reads.
        self.runs: RunConsumer | None = None
        self.projection: ProjectionConsumer | None = None
        self._pool: asyncpg.Pool | None = None
        self._runs: AIOKafkaConsumer | None = None
        self._projection: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        s, stack = self.settings, self._stack
        tracing = self._tracing
        if tracing is None:
            tracing = build_tracing(s.tracing, service="workflow-runner")
            stack.callback(tracing.shutdown)
        self._pool = pool = await open_pool(s, stack)
        await ensure_topics(s.kafka, self.topics)
        self.sandbox = await start_sandbox(s, stack)
        shares = ConnectionShares(pool, per_organization=share_of(s.postgres.pool_max_size))
        self.service = service = RunnerService(
            executions=PostgresExecutions(shares),
            projection=PostgresProjection(pool, shares),
            sandbox=self.sandbox,
            fetcher=open_fetcher(s, stack),
            clock=self._clock,
            metrics=self._metrics,
            tracing=tracing,
        )
        producer = make_producer(s.kafka)  # dead letters only
        await producer.start()
        stack.push_async_callback(stop_quietly, "producer", producer.stop)
        self._runs, self._projection = await start_consumers(s, self.topics, stack)
        self.runs = RunConsumer(
            self._runs, service, producer=producer, dlq_topic=self.topics.workflow_runs_dlq,
            metrics=self._metrics, stopping=self._stopping, settings=s, tracing=tracing,
        )  # fmt: skip
        self.projection = ProjectionConsumer(
            self._projection, service, room_state_topic=self.topics.room_state,
            metrics=self._metrics, stopping=self._stopping, retry_limit=s.retry_limit,
            fetch_stall_s=s.fetch_stall_s, backoff_max_s=s.retry_backoff_max_s,
        )  # fmt: skip
        runner = await start_health_server(
            self._readiness, self.metrics_registry, host=s.health_host, port=s.health_port
        )
        if runner is not None:
            stack.push_async_callback(runner.cleanup)
        self._tasks = [
            asyncio.create_task(self.runs.run(), name="runs"),
            asyncio.create_task(self.projection.run(), name="projection"),
        ]
        # What is built by now (modules, clients, the sandbox's hosts) lives as long as the
        # process: out of the collector's sight, a full collection no longer walks it. In
        # `make chaos`'s sandbox scenario one took 61 ms of the event loop, every run waiting on
        # it; after the freeze no full collection ran at all, the longest one 7 ms.
        gc.freeze()
        log.info("workflows.started", group=self.topics.group("workflows"))

    async def _readiness(self) -> dict[str, str]:
        if self._stopping.is_set():
            return {"runs": "stopping"}
        # A loop that ended while not stopping is a bug: say so rather than look ready.
        ended = [task.get_name() for task in self._tasks if task.done()]
        now = asyncio.get_running_loop().time()
        runs, projection, pool = self.runs, self.projection, self._pool
        # served only once started
        assert runs is not None and projection is not None and pool is not None
        assert self._runs is not None and self._projection is not None
        return {
            "loops": f"ended: {', '.join(ended)}" if ended else "ok",
            "runs": "ok" if self._runs.assignment() else "waiting",
            "runs_fetch": runs.fetches.check(now=now, has_work=bool(self._runs.assignment())),
            "runs_retry": runs.retries.check(),
            "dead_letters": runs.dead_letter_retries.check(),
            "projection_fetch": projection.fetches.check(
                now=now, has_work=bool(self._projection.assignment())
            ),
            "projection": projection.retries.check(),
            "broker": await broker_check(self._runs, [self.topics.workflow_runs]),
            "postgres": await postgres_check(pool),
        }

    async def stop(self) -> None:
        """Stop fetching; the runs under way run to their end (each is bounded by the wall
        time) and are committed; requests fetched but not started are not (the next consumer
        reads them again); then close."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        self._stopping.set()
        log.info("workflows.stopping", reason="no more fetches; the runs under way are finished")
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=self.settings.wall_timeout_s + 5)
        await self._stack.aclose()
        log.info("workflows.stopped", seconds=round(loop.time() - started, 3))


async def open_pool(s: RunnerSettings, stack: AsyncExitStack) -> asyncpg.Pool:
    """The runner's pool, its schema migrated; retention running beside it when the runner
    holds the owner role (it migrates on start), else the retention CronJob runs it."""
    pool = await create_pool(s.postgres)
    stack.push_async_callback(pool.close)
    async with pool.acquire() as conn:
        await prepare_schema(
            conn,
            s.postgres,
            schema="workflow",
            package="services.workflow_runner",
            plan=PLAN,
            production=s.runtime.production,
        )
    if s.postgres.migrate_on_start:
        retention = asyncio.create_task(retention_loop(pool, PLAN, s.postgres), name="retention")
        stack.push_async_callback(cancelled, retention)
    return pool


async def cancelled(task: asyncio.Task[None]) -> None:
    """Cancel `task` and wait for it to end (at shutdown, before the pool it uses closes)."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def start_sandbox(s: RunnerSettings, stack: AsyncExitStack) -> Sandbox:
    sandbox = Sandbox(sandbox_settings(s))
    await sandbox.start()
    stack.push_async_callback(sandbox.close)
    return sandbox


def open_fetcher(s: RunnerSettings, stack: AsyncExitStack) -> Fetcher:
    """Workflows' fetch: an HTTP client whose resolver is the SSRF guard."""
    policy = AddressPolicy.build(
        allow_loopback=s.loopback_allowed, allowed_networks=s.allowed_networks
    )
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(resolver=GuardedResolver(policy), limit=64),
        auto_decompress=False,
    )
    stack.push_async_callback(session.close)
    return Fetcher(session, policy=policy, timeout_s=s.fetch_timeout_s, max_bytes=s.fetch_max_bytes)


async def start_consumers(
    s: RunnerSettings, topics: Topics, stack: AsyncExitStack
) -> tuple[AIOKafkaConsumer, AIOKafkaConsumer]:
    """The run requests' consumer and the projection's (events and room state), started."""
    runs = make_consumer(
        s.kafka,
        topics.workflow_runs,
        group_id=topics.group("workflows"),
        max_poll_records=s.fetch_max_records,
    )
    projection = make_consumer(
        s.kafka,
        topics.events,
        topics.room_state,
        group_id=topics.group("workflow-projection"),
        background=True,
    )
    for name, consumer in (("runs", runs), ("projection", projection)):
        await consumer.start()
        stack.push_async_callback(stop_quietly, name, consumer.stop)
    return runs, projection


async def run(settings: RunnerSettings) -> None:
    """Serve until SIGTERM or SIGINT, then stop."""
    await run_until_signalled(lambda: Runner(settings))
