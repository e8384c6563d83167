"""Stored deliveries made due again from Postgres, batch by batch: the ones a disabled webhook
holds, once it is enabled (failed, once it is deleted), and the failed ones of recovery jobs;
and auto-disable, which orders the registry to disable webhooks that stopped succeeding.

Idempotent and safe with N replicas (see `UpkeepStore`); a pass that dies leaves Postgres as
its last batch left it, and the next pass, on any replica, goes on from there. What it makes
due is claimed by the retry scheduler like any retry, so it waits in the same lanes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID

import structlog

from services.delivery.dependencies import RecoveryTurn, TargetLookup, UpkeepStore
from services.delivery.health_store import StaleWebhook
from services.delivery.policy import HeldFate, RecoveryStep, held_fate, recovery_step
from shared.events import format_timestamp
from shared.messages import DisableWebhook

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
        auto_disable: AutoDisable | None = None,
    ) -> None:
        self._store = store
        self._targets = targets
        self._clock = clock
        self._batch = batch
        self.wake = wake  # set by whoever has news for a pass (a registry change, an order)
        self._due = due  # set when deliveries became due: the retry scheduler claims them
        self._auto_disable = auto_disable

    async def run_once(self) -> bool:
        """One pass; True when a batch was full, so there is more to do at once."""
        held = await self.resume_held()
        recovered = await self.advance_recoveries()
        disabled = await self._auto_disable.run_once() if self._auto_disable else False
        return held or recovered or disabled

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


class StaleWebhooks(Protocol):
    """Webhooks auto-disable should disable, each in one caller's turn at a time."""

    def stale_turn(
        self, *, stale_before: datetime, limit: int, now: datetime
    ) -> AbstractAsyncContextManager[list[StaleWebhook]]:
        """At most `limit` webhooks with no successful attempt since before `stale_before`
        (their creation when none ever succeeded) and a delivery failed for good since, not
        ordered disabled since that failure; no other caller's until the block ends, and
        noted as ordered (at `now`) when it ends, not when it raises."""
        ...


class AutoDisable:
    """Orders the registry (`DisableWebhook`) to disable each webhook that has not succeeded
    for `disable_after_s` and has failed a delivery for good since; once per such failure,
    whatever the number of replicas. A failed order is made again on a later pass."""

    def __init__(
        self,
        *,
        store: StaleWebhooks,
        disable: Callable[[DisableWebhook], Awaitable[None]],
        clock: Callable[[], datetime],
        disable_after_s: float,
        batch: int,
    ) -> None:
        self._store = store
        self._disable = disable
        self._clock = clock
        self._after = timedelta(seconds=disable_after_s)
        self._batch = batch

    async def run_once(self) -> bool:
        """One sweep; True when the batch was full."""
        now = self._clock()
        turn = self._store.stale_turn(stale_before=now - self._after, limit=self._batch, now=now)
        async with turn as stale:
            for webhook in stale:
                if webhook.enabled and webhook.organization_id is not None:
                    await self._order(webhook, now)
        return len(stale) >= self._batch

    async def _order(self, webhook: StaleWebhook, now: datetime) -> None:
        reason = stale_reason(webhook, self._after)
        await self._disable(
            DisableWebhook(
                webhook_id=str(webhook.webhook_id),
                organization_id=str(webhook.organization_id),
                reason=reason,
                requested_at=now,
            )
        )
        log.warning("delivery.webhook_auto_disabled", webhook_id=str(webhook.webhook_id))


def stale_reason(webhook: StaleWebhook, after: timedelta) -> str:
    """Why auto-disable disabled it, for the webhook's `disabled_reason` and the event."""
    seconds = int(after.total_seconds())
    span = f"{seconds // 86400} days" if seconds % 86400 == 0 else f"{seconds} s"
    reason = (
        f"auto-disabled: no successful attempt for over {span} (since"
        f" {format_timestamp(webhook.since)}) and a delivery failed for good since"
    )
    if webhook.last_error:
        reason += f"; last error: {webhook.last_error}"
    return reason[:1000]
