"""Stored deliveries made due again from Postgres, batch by batch: the ones a disabled webhook
holds, once it is enabled (failed, once it is deleted), and the failed ones of recovery jobs.

Idempotent and safe with N replicas (see `UpkeepStore`); a pass that dies leaves Postgres as
its last batch left it, and the next pass, on any replica, goes on from there. What it makes
due is claimed by the retry scheduler like any retry, so it waits in the same lanes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from uuid import UUID

import structlog

from services.delivery.dependencies import RecoveryTurn, TargetLookup, UpkeepStore
from services.delivery.policy import HeldFate, RecoveryStep, held_fate, recovery_step

log = structlog.get_logger(__name__)

# Recovery jobs advanced per pass, the least recently advanced first.
JOBS_PER_PASS = 32
DELETED = "webhook deleted"


class Upkeep:
    """Resumes held deliveries and advances recovery jobs; `run_once` is one pass of both."""

    def __init__(
        self,
        *,
        store: UpkeepStore,
        targets: TargetLookup,
        clock: Callable[[], datetime],
        batch: int,
        wake: asyncio.Event,
        due: asyncio.Event,
    ) -> None:
        self._store = store
        self._targets = targets
        self._clock = clock
        self._batch = batch
        self.wake = wake  # set by whoever has news for a pass (a registry change, an order)
        self._due = due  # set when deliveries became due: the retry scheduler claims them

    async def run_once(self) -> bool:
        """One pass; True when a batch was full, so there is more to do at once."""
        held = await self.resume_held()
        recovered = await self.advance_recoveries()
        return held or recovered

    async def resume_held(self) -> bool:
        """For every webhook holding deliveries: resume a batch when it is enabled, fail a
        batch when it is deleted, keep them while it is disabled."""
        more, after = False, None
        while True:
            webhooks = await self._store.held_webhooks(after=after, limit=self._batch)
            for webhook_id in webhooks:
                more |= await self._settle_held(webhook_id)
            if len(webhooks) < self._batch:
                return more
            after = webhooks[-1]

    async def _settle_held(self, webhook_id: UUID) -> bool:
        target = await self._targets.get(webhook_id)
        fate = held_fate(exists=target is not None, enabled=target is not None and target.enabled)
        if fate is HeldFate.KEEP:
            return False
        now = self._clock()
        if fate is HeldFate.RESUME:
            count = await self._store.resume_held(webhook_id, now=now, limit=self._batch)
            self._due.set()
        else:
            count = await self._store.fail_held(
                webhook_id, reason=DELETED, now=now, limit=self._batch
            )
        if count:
            log.info("delivery.held_" + fate.value, webhook_id=str(webhook_id), count=count)
        return count >= self._batch

    async def advance_recoveries(self) -> bool:
        more = False
        for job_id in await self._store.running_recoveries(limit=JOBS_PER_PASS):
            async with self._store.recovery_turn(job_id) as turn:
                if turn is not None:  # else another replica is advancing it
                    more |= await self._advance(turn)
        return more

    async def _advance(self, turn: RecoveryTurn) -> bool:
        """Count the job's progress, then mark, wait, finish or fail (`recovery_step`); True
        when it may mark again at once."""
        job = await turn.settle(now=self._clock())
        exists = await self._targets.get(job.webhook_id) is not None
        step = self._step(turn, exists)
        if step is RecoveryStep.MARK:
            count = await turn.mark(limit=self._batch, now=self._clock())
            if count:
                self._due.set()
                log.info(
                    "delivery.recovery_marked",
                    job_id=str(job.job_id),
                    count=count,
                    marked=turn.recovery.marked,
                )
            step = self._step(turn, exists)
        if step in (RecoveryStep.FINISH, RecoveryStep.FAIL):
            status, error = ("done", None) if step is RecoveryStep.FINISH else ("failed", DELETED)
            await turn.finish(status, error=error, now=self._clock())
            job = turn.recovery
            log.info(
                "delivery.recovery_finished",
                job_id=str(job.job_id),
                status=status,
                marked=job.marked,
                done=job.done,
            )
        return step is RecoveryStep.MARK

    def _step(self, turn: RecoveryTurn, webhook_exists: bool) -> RecoveryStep:
        job = turn.recovery
        return recovery_step(
            webhook_exists=webhook_exists,
            exhausted=job.exhausted,
            outstanding=job.outstanding,
            batch=self._batch,
        )
