"""The run requests consumer: fetch while the flow has room, run each request until it is
recorded, commit each partition up to its lowest run not yet recorded.

At-least-once: an offset is committed only once its run is recorded (or its invalid request
acknowledged by the DLQ); a run is idempotent on its run id, so a request read again after a
crash or a rebalance is not run twice.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord, TopicPartition
from opentelemetry.context import Context

from services.workflow_runner.flow import Fetched, RunFlow
from services.workflow_runner.retries import RetryWatches, backoff_s
from services.workflow_runner.run_requests import read_request
from services.workflow_runner.service import RunnerMetrics, RunnerService
from services.workflow_runner.settings import RunnerSettings
from shared.dead_letters import send_dead_letter
from shared.failures import describe, is_content_error
from shared.messages import WorkflowRunRequested
from shared.readiness import FetchWatch, RetryWatch
from shared.tracing import NO_TRACING, Tracing, parent_from_headers

log = structlog.get_logger(__name__)


class RunConsumer:
    """Consumes the workflow runs topic into `service` until `stopping` is set; `run()` is the
    loop, its watches (`fetches`, `retries`, `dead_letter_retries`) feed /readyz."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        service: RunnerService,
        *,
        producer: AIOKafkaProducer,
        dlq_topic: str,
        metrics: RunnerMetrics,
        stopping: asyncio.Event,
        settings: RunnerSettings,
        tracing: Tracing = NO_TRACING,
    ):
        self._tracing = tracing
        # Each fetched run's trace (its record's `traceparent`), by run id, until it ran.
        self._parents: dict[str, Context] = {}
        self._consumer = consumer
        self._service = service
        self._producer = producer
        self._dlq_topic = dlq_topic
        self._metrics = metrics
        self._stopping = stopping
        self._fetch_max_records = settings.fetch_max_records
        self._wall_timeout_s = settings.wall_timeout_s
        self._backoff_max_s = settings.retry_backoff_max_s
        # /readyz: a run retried past the limit, a consumer that stopped fetching while it
        # holds partitions, dead letters the broker keeps refusing.
        self.fetches = FetchWatch("runs consumer", settings.fetch_stall_s)
        self.retries = RetryWatches(what="run", limit=settings.retry_limit)
        self.dead_letter_retries = RetryWatch("dead-lettering run requests", settings.retry_limit)
        self.flow = RunFlow(
            self._run_until_recorded,
            max_running=settings.max_concurrent_runs,
            max_per_organization=settings.max_concurrent_runs_per_organization,
            max_waiting=settings.fetch_max_records,
        )

    async def _pause(self, seconds: float) -> None:
        """Sleep, but no longer than until the runner stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def run(self) -> None:
        """Fetch while the flow has room, start each run as it arrives, commit each partition
        up to its lowest run not yet recorded. On stop: fetch no more, let the runs under way
        end (each is bounded by the wall time), commit them."""
        consumer, flow, fetch_max = self._consumer, self.flow, self._fetch_max_records
        while not self._stopping.is_set():
            try:
                if flow.room == 0:
                    await flow.wait_progress(0.5)
                else:
                    batches = await consumer.getmany(
                        timeout_ms=500, max_records=min(flow.room, fetch_max)
                    )
                    self.fetches.fetched(now=asyncio.get_running_loop().time())
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
        await flow.drain(self._wall_timeout_s + 3)
        with contextlib.suppress(Exception):
            await self._commit(consumer)

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        offsets = self.flow.offsets
        assigned = consumer.assignment()
        offsets.forget(tp for tp in list(offsets.committable()) if tp not in assigned)
        if marks := offsets.committable():
            await consumer.commit(marks)
            offsets.committed(marks)

    def _fetched(self, record: ConsumerRecord) -> tuple[Fetched, str]:
        """The record as the flow takes it, and why it is not a valid request ("" when it is);
        an invalid one is done at once, once it is in the DLQ."""
        tp = TopicPartition(record.topic, record.partition)
        request = read_request(record.value)
        if isinstance(request, str):
            return Fetched(tp, record.offset, "", "", None), request
        if self._tracing.enabled and (parent := parent_from_headers(record.headers)) is not None:
            self._parents[request.run_id] = parent
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
                self.dead_letter_retries.failed(repr(exc))
                log.warning("workflows.dead_letter_failed", error=repr(exc), failures=failures)
                await self._pause(backoff_s(failures, max_s=self._backoff_max_s))
        self.dead_letter_retries.succeeded()
        for record, why in rejected:
            log.warning("workflows.request_invalid", partition=record.partition,
                        offset=record.offset, reason=why)  # fmt: skip
            self._metrics.poison.inc("run_request")

    async def _send_dead_letter(self, record: ConsumerRecord, why: str) -> asyncio.Future:
        return await send_dead_letter(self._producer, self._dlq_topic, record, why)

    async def _run_until_recorded(self, request: WorkflowRunRequested) -> None:
        """One run, tried again after a back-off while it raises for the world's sake
        (Postgres away, no sandbox host): it is idempotent on its run id. A run that fails
        for its own input is recorded as an error with the reason instead, once. Raises once
        stopping: then it is not committed."""
        refused: BaseException | None = None
        parent = self._parents.pop(request.run_id, None)
        try:
            while True:
                try:
                    if refused is None:
                        await self._service.run(request, parent=parent)
                    else:
                        await self._service.record_refused(request, refused)
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
                    failures = self.retries.failed(request.run_id, repr(exc))
                    log.warning("workflows.run_failed", run_id=request.run_id,
                                error=repr(exc), failures=failures)  # fmt: skip
                    await self._pause(backoff_s(failures, max_s=self._backoff_max_s))
        finally:
            self.retries.forget(request.run_id)
