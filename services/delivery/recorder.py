"""Batches finished attempts into one statement: thousands of deliveries a second need it.

Bounded: `record()` waits when the queue is full. A failed write keeps its batch and retries,
so an attempt's result is not dropped while Postgres is away (if the process dies first, the
lease runs out and the delivery is attempted again: at-least-once).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime

import asyncpg
import structlog

from services.delivery import repository
from services.delivery.repository import AttemptRow

log = structlog.get_logger(__name__)


class AttemptRecorder:
    def __init__(
        self, pool: asyncpg.Pool, *, batch_size: int, clock: Callable[[], datetime]
    ) -> None:
        self._pool = pool
        self._batch_size = batch_size
        self._clock = clock
        self._queue: asyncio.Queue[AttemptRow] = asyncio.Queue(maxsize=batch_size * 4)
        self._idle = asyncio.Event()
        self._idle.set()

    async def record(self, row: AttemptRow) -> None:
        self._idle.clear()
        await self._queue.put(row)

    async def run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._write(batch)
            if self._queue.empty():
                self._idle.set()

    async def drain(self, timeout_s: float) -> bool:
        """Wait until everything recorded so far is written (shutdown); False when some
        attempts were still unwritten after `timeout_s` (their leases bring them back)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout=timeout_s)
        return self._idle.is_set()

    async def _write(self, batch: list[AttemptRow]) -> None:
        delay = 0.1
        while True:
            try:
                async with self._pool.acquire() as conn:
                    await repository.record_attempts(conn, batch, now=self._clock())
                return
            except Exception as exc:  # noqa: BLE001 - whatever the pool raises, the task lives on
                log.warning("delivery.record_failed", error=repr(exc), batch=len(batch))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
