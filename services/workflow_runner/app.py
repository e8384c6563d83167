"""The one place that builds the runner's pool, sandbox, HTTP client and consumers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import signal
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import aiohttp
import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from services.delivery.dispatcher import GuardedResolver
from services.delivery.ssrf import AddressPolicy
from services.workflow_runner.bindings import Fetcher
from services.workflow_runner.connection_shares import ConnectionShares, share_of
from services.workflow_runner.flow import Fetched, RunFlow
from services.workflow_runner.projection import (
    InvalidStateKey,
    change_from_state,
    changes_from_event,
)
from services.workflow_runner.sandbox import Sandbox, SandboxSettings
from services.workflow_runner.service import RunnerMetrics, RunnerService
from services.workflow_runner.settings import RunnerSettings
from shared.db import apply_migrations, create_pool, postgres_check
from shared.health import start_health_server
from shared.kafka import Topics, broker_check, ensure_topics, make_consumer, stop_quietly
from shared.messages import WorkflowRunRequested

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
    )


class Runner:
    """The running service: `start()` builds everything, `stop()` drains and closes."""

    def __init__(self, settings: RunnerSettings, *, clock: Callable[[], datetime] = utcnow):
        self.settings = settings
        self.topics = Topics.from_settings(settings.kafka)
        self.metrics_registry = CollectorRegistry()
        self._clock = clock
        self._stack = AsyncExitStack()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.service: RunnerService | None = None
        self.sandbox: Sandbox | None = None

    async def start(self) -> None:
        s, stack = self.settings, self._stack
        pool = await create_pool(s.postgres)
        stack.push_async_callback(pool.close)
        async with pool.acquire() as conn:
            await apply_migrations(conn, schema="workflow", package="services.workflow_runner")
        await ensure_topics(s.kafka, self.topics)

        sandbox = Sandbox(sandbox_settings(s))
        await sandbox.start()
        stack.push_async_callback(sandbox.close)
        self.sandbox = sandbox

        policy = AddressPolicy.build(
            allow_loopback=s.loopback_allowed, allowed_networks=s.allowed_networks
        )
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=GuardedResolver(policy), limit=64),
            auto_decompress=False,
        )
        stack.push_async_callback(session.close)
        fetcher = Fetcher(
            session, policy=policy, timeout_s=s.fetch_timeout_s, max_bytes=s.fetch_max_bytes
        )
        self.service = RunnerService(
            pool=pool,
            shares=ConnectionShares(pool, per_organization=share_of(s.postgres.pool_max_size)),
            sandbox=sandbox,
            fetcher=fetcher,
            clock=self._clock,
            metrics=RunnerMetrics(self.metrics_registry),
        )

        runs = make_consumer(
            s.kafka,
            self.topics.workflow_runs,
            group_id=self.topics.group("workflows"),
            max_poll_records=s.fetch_max_records,
        )
        projection = make_consumer(
            s.kafka,
            self.topics.events,
            self.topics.room_state,
            group_id=self.topics.group("workflow-projection"),
            background=True,
        )
        for name, consumer in (("runs", runs), ("projection", projection)):
            await consumer.start()
            stack.push_async_callback(stop_quietly, name, consumer.stop)
        self._runs = runs
        self._pool = pool

        runner = await start_health_server(
            self._readiness, self.metrics_registry, host=s.health_host, port=s.health_port
        )
        if runner is not None:
            stack.push_async_callback(runner.cleanup)
        self._flow = RunFlow(
            self._run_until_recorded,
            max_running=s.max_concurrent_runs,
            max_per_organization=s.max_concurrent_runs_per_organization,
            max_waiting=s.fetch_max_records,
        )
        self._tasks = [
            asyncio.create_task(self._flow_loop(runs), name="runs"),
            asyncio.create_task(
                self._loop("projection", projection, self._project_batch), name="projection"
            ),
        ]
        # What is built by now (modules, clients, the sandbox's hosts) lives as long as the
        # process: out of the collector's sight, a full collection no longer walks it. In
        # `make chaos` scenario 10 one took 61 ms of the event loop, every run waiting on it;
        # after the freeze no full collection ran at all, the longest one 7 ms.
        gc.freeze()
        log.info("workflows.started", group=self.topics.group("workflows"))

    async def _readiness(self) -> dict[str, str]:
        if self._stopping.is_set():
            return {"runs": "stopping"}
        # A loop that ended while not stopping is a bug: say so rather than look ready.
        ended = [task.get_name() for task in self._tasks if task.done()]
        return {
            "loops": f"ended: {', '.join(ended)}" if ended else "ok",
            "runs": "ok" if self._runs.assignment() else "waiting",
            "broker": await broker_check(self._runs, [self.topics.workflow_runs]),
            "postgres": await postgres_check(self._pool),
        }

    async def _loop(
        self,
        name: str,
        consumer: AIOKafkaConsumer,
        handle: Callable[[list[ConsumerRecord]], Awaitable[None]],
    ) -> None:
        """Fetch, handle the whole batch, then commit; a failure re-reads the batch."""
        while not self._stopping.is_set():
            batches: dict = {}
            try:
                batches = await consumer.getmany(timeout_ms=500)
                if not batches:
                    continue
                await handle([r for records in batches.values() for r in records])
                await consumer.commit({tp: rs[-1].offset + 1 for tp, rs in batches.items()})
            except Exception as exc:  # noqa: BLE001 - this loop's top-level catch: re-read, retry
                log.warning("workflows.batch_failed", loop=name, error=repr(exc))
                for tp, records in batches.items():
                    consumer.seek(tp, records[0].offset)
                await asyncio.sleep(1)

    async def _flow_loop(self, consumer: AIOKafkaConsumer) -> None:
        """Fetch while the flow has room, start each run as it arrives, commit each partition
        up to its lowest run not yet recorded. On stop: fetch no more, let the runs under way
        end (each is bounded by the wall time), commit them."""
        flow, fetch_max = self._flow, self.settings.fetch_max_records
        while not self._stopping.is_set():
            try:
                if flow.room == 0:
                    await flow.wait_progress(0.5)
                else:
                    batches = await consumer.getmany(
                        timeout_ms=500, max_records=min(flow.room, fetch_max)
                    )
                    flow.add(self._fetched(r) for records in batches.values() for r in records)
                await self._commit(consumer)
            except Exception as exc:  # noqa: BLE001 - this loop's top-level catch: retry
                log.warning("workflows.fetch_failed", error=repr(exc))
                await asyncio.sleep(1)
        await flow.drain(self.settings.wall_timeout_s + 3)
        with contextlib.suppress(Exception):
            await self._commit(consumer)

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        offsets = self._flow.offsets
        assigned = consumer.assignment()
        offsets.forget(tp for tp in list(offsets.committable()) if tp not in assigned)
        if marks := offsets.committable():
            await consumer.commit(marks)
            offsets.committed(marks)

    @staticmethod
    def _fetched(record: ConsumerRecord) -> Fetched:
        tp = TopicPartition(record.topic, record.partition)
        try:
            request = WorkflowRunRequested.model_validate_json(record.value or b"")
        except ValidationError as exc:
            log.error("workflows.request_invalid", offset=record.offset,
                      error=str(exc).splitlines()[0])  # fmt: skip
            return Fetched(tp, record.offset, "", "", None)
        return Fetched(tp, record.offset, request.organization_id, request.run_id, request)

    async def _run_until_recorded(self, request: WorkflowRunRequested) -> None:
        """One run, tried again while it raises (Postgres away, no sandbox host): it is
        idempotent on its run id. Raises once stopping: then it is not committed."""
        assert self.service is not None
        while True:
            try:
                await self.service.run(request)
                return
            except Exception as exc:
                if self._stopping.is_set():
                    raise
                log.warning("workflows.run_failed", run_id=request.run_id, error=repr(exc))
                await asyncio.sleep(1)

    async def _project_batch(self, records: list[ConsumerRecord]) -> None:
        assert self.service is not None
        changes = []
        for record in records:
            try:
                value = json.loads(record.value) if record.value is not None else None
                if record.topic == self.topics.room_state:
                    changes.append(change_from_state((record.key or b"").decode(), value))
                elif isinstance(value, dict):
                    changes.extend(changes_from_event(value))
            except (ValueError, InvalidStateKey) as exc:
                # Bad events are fanout's to report (DLQ); bad state keys are only logged.
                log.warning("workflows.projection_skipped", topic=record.topic, error=str(exc))
        await self.service.project(changes)

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


async def run(settings: RunnerSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = Runner(settings)
    await runner.start()
    try:
        await stop.wait()
    finally:
        await runner.stop()
