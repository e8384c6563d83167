"""Batches finished attempts into one statement: thousands of deliveries a second need it.
The batch's endpoint health (`attempt_stats`) goes in the same transaction, one upsert.

Bounded: `record()` waits when the queue is full. Failures follow the one rule
(`shared.failures`): an outage (connection lost, timeout) keeps the batch and retries it with
back-off, so no result is dropped while Postgres is away (if the process dies first, the lease
runs out and the delivery is attempted again: at-least-once); a batch Postgres refuses for its
content is written in halves down to the rows Postgres refuses, and each of those is written
cleaned (its texts escaped; failing that, with its texts replaced by the reason), so one
endpoint's answer never holds back the others and its delivery is not sent again every lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Sequence
from datetime import datetime

import asyncpg
import structlog

from services.delivery import repository
from services.delivery.rows import AttemptRow
from shared.failures import PoisonCounter, describe, is_content_error, storable_text
from shared.readiness import BacklogWatch, RetryWatch

log = structlog.get_logger(__name__)

_BACKOFF_MAX_S = 5.0


class AttemptRecorder:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        batch_size: int,
        clock: Callable[[], datetime],
        poison: PoisonCounter | None = None,
        stall_s: float = 60.0,
        retry_limit: int = 10,
    ) -> None:
        self._pool = pool
        self._batch_size = batch_size
        self._clock = clock
        self._poison = poison
        self._queue: asyncio.Queue[AttemptRow] = asyncio.Queue(maxsize=batch_size * 4)
        self._idle = asyncio.Event()
        self._idle.set()
        self._writing = 0
        # /readyz: a backlog that stops shrinking, a write that keeps failing.
        self.backlog = BacklogWatch("attempt recorder backlog", stall_s)
        self.retries = RetryWatch("attempt recorder write", retry_limit)
        # Called once a batch that ended ordered deliveries is written: Postgres has started
        # their rooms' next ones (ordering.py), due now; the app wakes the retry scheduler.
        self.on_ordered_ended: Callable[[], None] = lambda: None

    async def record(self, row: AttemptRow) -> None:
        self._idle.clear()
        await self._queue.put(row)

    @property
    def pending(self) -> int:
        """Attempts finished and not yet written."""
        return self._queue.qsize() + self._writing

    def check(self) -> str:
        """Readiness: "ok", or why the recorder is stuck."""
        now = time.monotonic()
        self.backlog.observe(self.pending, now=now)
        stalled = self.backlog.check(now=now)
        return stalled if stalled != "ok" else self.retries.check()

    async def run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self._writing = len(batch)
            await self._write(batch)
            if any(row.ordered for row in batch):
                self.on_ordered_ended()
            self._writing = 0
            # A written batch is the backlog shrinking, however fast new attempts arrive.
            self.backlog.observe(0, now=time.monotonic())
            if self._queue.empty():
                self._idle.set()

    async def drain(self, timeout_s: float) -> bool:
        """Wait until everything recorded so far is written (shutdown); False when some
        attempts were still unwritten after `timeout_s` (their leases bring them back)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout=timeout_s)
        return self._idle.is_set()

    async def _write(self, batch: list[AttemptRow]) -> None:
        refused = await self._try(batch)
        if refused is None:
            return
        log.warning("delivery.record_refused", error=describe(refused), batch=len(batch))
        await self._write_apart(batch, refused)

    async def _write_apart(self, batch: list[AttemptRow], refused: BaseException) -> None:
        """A batch Postgres refused for its content: halves written on their own, down to
        the refused rows, which are written cleaned. One poison row among 500 costs about 18
        statements, not 500."""
        if len(batch) == 1:
            await self._write_cleaned(batch[0], refused)
            return
        middle = len(batch) // 2
        for half in (batch[:middle], batch[middle:]):
            half_refused = await self._try(half)
            if half_refused is not None:
                await self._write_apart(half, half_refused)

    async def _write_cleaned(self, row: AttemptRow, refused: BaseException) -> None:
        """The row Postgres refused, escaped; failing that, its texts replaced by the reason."""
        reason = describe(refused)
        log.warning(
            "delivery.record_poison",
            delivery_id=str(row.delivery_id),
            attempt=row.attempt,
            error=reason,
        )
        if self._poison is not None:
            self._poison.inc("attempt_row")
        for cleaned in (_escaped(row), _stripped(row, reason)):
            if await self._try([cleaned]) is None:
                return
        # Not even a row of numbers and our own ASCII went in: the lease brings the delivery
        # back, and this says why.
        log.error("delivery.record_dropped", delivery_id=str(row.delivery_id), error=reason)

    async def _try(self, rows: Sequence[AttemptRow]) -> BaseException | None:
        """Write `rows` in one statement, retrying outages with back-off until it is done;
        returns the content error Postgres refused them with (None: written)."""
        delay = 0.1
        while True:
            try:
                async with self._pool.acquire() as conn:
                    await repository.record_attempts_with_health(conn, rows, now=self._clock())
                self.retries.succeeded()
                return None
            except Exception as exc:  # noqa: BLE001 - whatever the pool raises, the task lives on
                if is_content_error(exc):
                    self.retries.succeeded()  # the statement ran: Postgres is there
                    return exc
                self.retries.failed(describe(exc))
                log.warning("delivery.record_failed", error=repr(exc)[:500], batch=len(rows))
                self.backlog.observe(self.pending, now=time.monotonic())
                await asyncio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX_S)


def _escaped(row: AttemptRow) -> AttemptRow:
    return dataclasses.replace(
        row,
        error=storable_text(row.error) if row.error is not None else None,
        response_body=storable_text(row.response_body) if row.response_body else None,
    )


def _stripped(row: AttemptRow, reason: str) -> AttemptRow:
    return dataclasses.replace(
        row,
        error=f"the attempt's result could not be stored as it was: {reason}"[:1000],
        response_body=None,
        request_headers=None,
    )
