"""The one place that builds the runner's pool, sandbox, HTTP client and consumers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import aiohttp
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import IllegalStateError
from aiokafka.structs import ConsumerRecord, TopicPartition
from prometheus_client import CollectorRegistry

from services.workflow_runner.bindings import Fetcher
from services.workflow_runner.connection_shares import ConnectionShares, share_of
from services.workflow_runner.flow import Fetched, RunFlow
from services.workflow_runner.projection import change_from_state, read_event
from services.workflow_runner.retries import RetryWatches, backoff_s
from services.workflow_runner.run_requests import read_request
from services.workflow_runner.sandbox import Sandbox, SandboxSettings
from services.workflow_runner.service import RunnerMetrics, RunnerService
from services.workflow_runner.settings import RunnerSettings
from shared.db import apply_migrations, create_pool, postgres_check
from shared.dead_letters import send_dead_letter
from shared.failures import describe, is_content_error
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
from shared.lifecycle import run_until_signalled
from shared.messages import WorkflowRunRequested
from shared.readiness import FetchWatch, RetryWatch
from shared.room_state import InvalidStateKey
from shared.ssrf import AddressPolicy

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
        self._metrics = RunnerMetrics(self.metrics_registry)
        self._clock = clock
        self._stack = AsyncExitStack()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.service: RunnerService | None = None
        self.sandbox: Sandbox | None = None
        # /readyz: a loop retrying one input past the limit, or a consumer that stopped
        # fetching while it holds partitions, is not ready.
        limit, stall_s = settings.retry_limit, settings.fetch_stall_s
        self._projection_retry = RetryWatch("projection batch", limit)
        self._dead_letter_retry = RetryWatch("dead-lettering run requests", limit)
        self._run_retries = RetryWatches(what="run", limit=limit)
        self._runs_fetch = FetchWatch("runs consumer", stall_s)
        self._projection_fetch = FetchWatch("projection consumer", stall_s)

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
            metrics=self._metrics,
        )

        producer = make_producer(s.kafka)  # dead letters only
        await producer.start()
        stack.push_async_callback(stop_quietly, "producer", producer.stop)
        self._producer: AIOKafkaProducer = producer

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
        self._runs, self._projection = runs, projection
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
            asyncio.create_task(self._projection_loop(projection), name="projection"),
        ]
        # What is built by now (modules, clients, the sandbox's hosts) lives as long as the
        # process: out of the collector's sight, a full collection no longer walks it. In
        # In `make chaos`'s sandbox scenario one took 61 ms of the event loop, every run waiting on
        # it; after the freeze no full collection ran at all, the longest one 7 ms.
        gc.freeze()
        log.info("workflows.started", group=self.topics.group("workflows"))

    async def _readiness(self) -> dict[str, str]:
        if self._stopping.is_set():
            return {"runs": "stopping"}
        # A loop that ended while not stopping is a bug: say so rather than look ready.
        ended = [task.get_name() for task in self._tasks if task.done()]
        now = asyncio.get_running_loop().time()
        return {
            "loops": f"ended: {', '.join(ended)}" if ended else "ok",
            "runs": "ok" if self._runs.assignment() else "waiting",
            "runs_fetch": self._runs_fetch.check(now=now, has_work=bool(self._runs.assignment())),
            "runs_retry": self._run_retries.check(),
            "dead_letters": self._dead_letter_retry.check(),
            "projection_fetch": self._projection_fetch.check(
                now=now, has_work=bool(self._projection.assignment())
            ),
            "projection": self._projection_retry.check(),
            "broker": await broker_check(self._runs, [self.topics.workflow_runs]),
            "postgres": await postgres_check(self._pool),
        }

    async def _projection_loop(self, consumer: AIOKafkaConsumer) -> None:
        """Fetch, project the whole batch, then commit. A record's content never fails the
        batch (it is stored cleaned or passed over, `_project_batch`); anything that does
        (Postgres away) re-reads the batch after a back-off, and past the retry limit turns
        /readyz red until a batch goes through."""
        loop = asyncio.get_running_loop()
        failures = 0
        while not self._stopping.is_set():
            batches: dict = {}
            try:
                batches = await consumer.getmany(timeout_ms=500)
                self._projection_fetch.fetched(now=loop.time())
                if not batches:
                    continue
                await self._project_batch([r for records in batches.values() for r in records])
                await consumer.commit({tp: rs[-1].offset + 1 for tp, rs in batches.items()})
                failures = 0
                self._projection_retry.succeeded()
            except Exception as exc:  # noqa: BLE001 - this loop's top-level catch: re-read, retry
                failures += 1
                self._projection_retry.failed(repr(exc))
                log.warning("workflows.batch_failed", loop="projection", error=repr(exc),
                            failures=failures)  # fmt: skip
                for tp, records in batches.items():
                    with contextlib.suppress(IllegalStateError):  # revoked meanwhile
                        consumer.seek(tp, records[0].offset)
                await self._pause(backoff_s(failures, max_s=self.settings.retry_backoff_max_s))

    async def _pause(self, seconds: float) -> None:
        """Sleep, but no longer than until the runner stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

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
                    self._runs_fetch.fetched(now=asyncio.get_running_loop().time())
                    records = [r for rs in batches.values() for r in rs]
                    fetched = [self._fetched(r) for r in records]
                    # Dead letters are acknowledged before their offsets can be committed.
                    pairs = zip(records, fetched, strict=True)
                    await self._dead_letter([(r, why) for r, (_, why) in pairs if why])
                    flow.add(item for item, _why in fetched)
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
    def _fetched(record: ConsumerRecord) -> tuple[Fetched, str]:
        """The record as the flow takes it, and why it is not a valid request ("" when it is);
        an invalid one is done at once, once it is in the DLQ."""
        tp = TopicPartition(record.topic, record.partition)
        request = read_request(record.value)
        if isinstance(request, str):
            return Fetched(tp, record.offset, "", "", None), request
        return Fetched(tp, record.offset, request.organization_id, request.run_id, request), ""

    async def _dead_letter(self, rejected: list[tuple[ConsumerRecord, str]]) -> None:
        """Each invalid request to the DLQ with its reason, tried again (after a back-off)
        while the broker does not acknowledge; raises once stopping, when nothing of the
        fetched batch is taken (it is read again)."""
        if not rejected:
            return
        failures = 0
        while True:
            try:
                acks = [await self._send_dead_letter(record, why) for record, why in rejected]
                await asyncio.gather(*acks)
                break
            except Exception as exc:
                if self._stopping.is_set():
                    raise
                failures += 1
                self._dead_letter_retry.failed(repr(exc))
                log.warning("workflows.dead_letter_failed", error=repr(exc), failures=failures)
                await self._pause(backoff_s(failures, max_s=self.settings.retry_backoff_max_s))
        self._dead_letter_retry.succeeded()
        for record, why in rejected:
            log.warning("workflows.request_invalid", partition=record.partition,
                        offset=record.offset, reason=why)  # fmt: skip
            self._metrics.poison.inc("run_request")

    async def _send_dead_letter(self, record: ConsumerRecord, why: str) -> asyncio.Future:
        return await send_dead_letter(self._producer, self.topics.workflow_runs_dlq, record, why)

    async def _run_until_recorded(self, request: WorkflowRunRequested) -> None:
        """One run, tried again after a back-off while it raises for the world's sake
        (Postgres away, no sandbox host): it is idempotent on its run id. A run that fails
        for its own input is recorded as an error with the reason instead, once. Raises once
        stopping: then it is not committed."""
        assert self.service is not None
        refused: BaseException | None = None
        try:
            while True:
                try:
                    if refused is None:
                        await self.service.run(request)
                    else:
                        await self.service.record_refused(request, refused)
                    return
                except Exception as exc:
                    if self._stopping.is_set():
                        raise
                    if is_content_error(exc):
                        if refused is not None:  # not even the refusal can be stored
                            log.error("workflows.run_unrecordable", run_id=request.run_id,
                                      error=describe(exc))  # fmt: skip
                            self._metrics.poison.inc("run_unrecordable")
                            return
                        refused = exc
                        continue
                    failures = self._run_retries.failed(request.run_id, repr(exc))
                    log.warning("workflows.run_failed", run_id=request.run_id,
                                error=repr(exc), failures=failures)  # fmt: skip
                    await self._pause(backoff_s(failures, max_s=self.settings.retry_backoff_max_s))
        finally:
            self._run_retries.forget(request.run_id)

    async def _project_batch(self, records: list[ConsumerRecord]) -> None:
        """Project a batch; a record that is not JSON, has a bad room-state key or a wrongly
        shaped part is passed over and reported once, after the batch is written (a batch
        retried after an outage does not report it again)."""
        assert self.service is not None
        changes, passed_over = [], []
        for record in records:
            try:
                value = json.loads(record.value) if record.value is not None else None
                if record.topic == self.topics.room_state:
                    changes.append(change_from_state((record.key or b"").decode(), value))
                elif isinstance(value, dict):
                    event_changes, skipped = read_event(value)
                    changes.extend(event_changes)
                    passed_over.extend((record, "projection_event", why) for why in skipped)
            except InvalidStateKey as exc:
                passed_over.append((record, "projection_state_key", str(exc)[:200]))
            except (ValueError, RecursionError) as exc:
                # Not JSON: fanout reports events to the DLQ; here it only is passed over.
                passed_over.append((record, "projection_record", describe(exc, limit=200)))
        await self.service.project(changes)
        for record, kind, why in passed_over:
            log.warning("workflows.projection_skipped", topic=record.topic,
                        partition=record.partition, offset=record.offset, reason=why)  # fmt: skip
            self._metrics.poison.inc(kind)

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
    """Serve until SIGTERM or SIGINT, then stop."""
    await run_until_signalled(lambda: Runner(settings))
