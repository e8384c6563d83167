"""The projection consumer: room events and room state into the workflow tables the
bindings read (`workflow.rooms`, `room_users`, `kv_entries`, `files`).

At-least-once: a batch is projected whole, then committed; an outage re-reads it (projecting
is idempotent). A record's content never fails the batch: it is passed over and reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import structlog
from aiokafka.structs import ConsumerRecord

from services.workflow_runner.projection import change_from_state, read_event
from services.workflow_runner.retries import backoff_s
from services.workflow_runner.service import RunnerMetrics, RunnerService
from shared.failures import describe
from shared.kafka import ServiceConsumer, offsets_after, read_again
from shared.readiness import FetchWatch, RetryWatch
from shared.room_state import InvalidStateKey

log = structlog.get_logger(__name__)


class ProjectionConsumer:
    """Consumes the events and room-state topics into `service` until `stopping` is set;
    `run()` is the loop, its watches (`fetches`, `retries`) feed /readyz."""

    def __init__(
        self,
        consumer: ServiceConsumer,
        service: RunnerService,
        *,
        room_state_topic: str,
        metrics: RunnerMetrics,
        stopping: asyncio.Event,
        retry_limit: int,
        fetch_stall_s: float,
        backoff_max_s: float,
    ):
        self._consumer = consumer
        self._service = service
        self._room_state_topic = room_state_topic
        self._metrics = metrics
        self._stopping = stopping
        self._backoff_max_s = backoff_max_s
        self.fetches = FetchWatch("projection consumer", fetch_stall_s)
        self.retries = RetryWatch("projection batch", retry_limit)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but no longer than until the runner stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def run(self) -> None:
        """Fetch, project the whole batch, then commit. A record's content never fails the
        batch (it is stored cleaned or passed over, `project_batch`); anything that does
        (Postgres away) re-reads the batch after a back-off, and past the retry limit turns
        /readyz red until a batch goes through."""
        consumer, loop = self._consumer, asyncio.get_running_loop()
        failures = 0
        while not self._stopping.is_set():
            batches: dict = {}
            try:
                batches = await consumer.getmany(timeout_ms=500)
                self.fetches.fetched(now=loop.time())
                if not batches:
                    continue
                await self.project_batch([r for records in batches.values() for r in records])
                await consumer.commit(offsets_after(batches))
                failures = 0
                self.retries.succeeded()
            except Exception as exc:  # noqa: BLE001 - this loop's top-level catch: re-read, retry
                failures += 1
                self.retries.failed(repr(exc))
                log.warning("workflows.batch_failed", loop="projection", error=repr(exc),
                            failures=failures)  # fmt: skip
                read_again(consumer, batches)
                await self._pause(backoff_s(failures, max_s=self._backoff_max_s))

    async def project_batch(self, records: list[ConsumerRecord]) -> None:
        """Project a batch; a record that is not JSON, has a bad room-state key or a wrongly
        shaped part is passed over and reported once, after the batch is written (a batch
        retried after an outage does not report it again)."""
        changes, passed_over = [], []
        for record in records:
            try:
                value = json.loads(record.value) if record.value is not None else None
                if record.topic == self._room_state_topic:
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
        await self._service.project(changes)
        for record, kind, why in passed_over:
            log.warning("workflows.projection_skipped", topic=record.topic,
                        partition=record.partition, offset=record.offset, reason=why)  # fmt: skip
            self._metrics.poison.inc(kind)
