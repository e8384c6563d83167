"""What `DeliveryService` depends on, as Protocols with their contracts.

The real adapters: `repository.PostgresDeliveryStore`, `dispatcher.Dispatcher`,
`recorder.AttemptRecorder`, `targets.Targets`, `recoveries.PostgresUpkeep`. The fakes in
tests/support/delivery_fakes.py pass the same contract suites
(tests/integration/test_delivery_contracts.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol
from uuid import UUID

from services.delivery.policy import AttemptResult
from services.delivery.recoveries import Recovery
from services.delivery.rows import AttemptRow, Job, Target
from shared.messages import DeliveryRequested, RecoverRequested, RedeliverRequested


class DeliveryStore(Protocol):
    """Durable deliveries and the leases that make one replica attempt each at a time.

    Idempotent: a request stored before (the same delivery, created at the same instant: a
    record read again) stores nothing new. A delivery is claimed only when due and not leased;
    a lease is held until recorded, released, stopped or run out. Deliveries are found by
    (id, created_at), as a `Job` carries them.
    """

    async def store_requests(
        self,
        requested: Sequence[DeliveryRequested],
        redeliver: Sequence[RedeliverRequested],
        *,
        now: datetime,
        lease_until: datetime,
        recover: Sequence[RecoverRequested] = (),
        traces: Mapping[str, str] | None = None,
    ) -> tuple[list[Job], list[bool]]:
        """In one transaction: store the new requests (each with its traceparent in `traces`,
        by delivery id, when it has one), leased until `lease_until`, make
        each redelivered one due `now` (outside its room's order), and start each recovery
        job not started before; the new jobs, and per redelivery whether it exists.

        An ordered request (`ordering: "room"`) is stored waiting behind its room's head and
        comes back as a job only once it is the head (the lowest position waiting, when the
        room has none): possibly a delivery stored before."""
        ...

    async def claim_due(
        self, *, now: datetime, lease_until: datetime, limit: int, skip_webhooks: Sequence[UUID]
    ) -> list[Job]:
        """Lease up to `limit` due, unleased deliveries, oldest due first, none of
        `skip_webhooks`; no two callers claim the same one."""
        ...

    async def renew_lease(self, job: Job, *, lease_until: datetime) -> datetime | None:
        """Extend the lease `job` holds; None when it is no longer ours (claimed again,
        recorded or stopped since)."""
        ...

    async def release(self, jobs: Sequence[Job], *, due_at: datetime) -> None:
        """Give pending deliveries back, unleased, due at `due_at`."""
        ...

    async def stop(self, jobs: Sequence[Job], *, reason: str, now: datetime) -> None:
        """End pending deliveries without an attempt (their webhook is gone)."""
        ...

    async def hold(self, jobs: Sequence[Job], *, now: datetime) -> None:
        """Keep pending deliveries of a disabled webhook: unleased, out of every claim (no
        next attempt) until `UpkeepStore.resume_held`."""
        ...


class RecoveryTurn(Protocol):
    """One recovery job, no other caller's until the turn ends; what it did is kept when the
    turn ends, nothing when it raises."""

    recovery: Recovery

    async def settle(self, *, now: datetime) -> Recovery:
        """Count into `done`, once each, the job's deliveries attempted (or gone) since it
        marked them; the job as it is now."""
        ...

    async def mark(self, *, limit: int, now: datetime) -> int:
        """Make the next `limit` failed deliveries of the window (by creation) pending and due
        from `now`, in that order; how many (0: none is left, and the job is `exhausted`)."""
        ...

    async def finish(self, status: str, *, error: str | None, now: datetime) -> None:
        """End the job: `done` or `failed` (with why)."""
        ...


class UpkeepStore(Protocol):
    """Deliveries made due again from Postgres in batches of at most `limit`: held ones once
    their webhook is enabled, and the failed ones of recovery jobs. Safe with N replicas: no
    two callers take the same delivery or the same job at once."""

    async def held_webhooks(self, *, after: UUID | None, limit: int) -> list[UUID]:
        """Webhooks holding deliveries, by id, those after `after`; at most `limit`."""
        ...

    async def resume_held(self, webhook_id: UUID, *, now: datetime, limit: int) -> int:
        """Make its oldest held deliveries due from `now`, in order of creation; how many."""
        ...

    async def fail_held(self, webhook_id: UUID, *, reason: str, now: datetime, limit: int) -> int:
        """End its held deliveries as failed, with `reason` (it is deleted); how many."""
        ...

    async def running_recoveries(self, *, limit: int) -> list[UUID]:
        """Running recovery jobs, the least recently advanced first."""
        ...

    def recovery_turn(self, job_id: UUID) -> AbstractAsyncContextManager[RecoveryTurn | None]:
        """The job's turn; None when it is not running or another caller has its turn."""
        ...


class AttemptLog(Protocol):
    """Where finished attempts go: each row sets its delivery's state and is kept with it.

    `record` returns once the row is taken (it may wait while a bound is full); the row is
    written soon after, only if it is the delivery's next attempt (never twice). A row lost
    to a crash means the attempt is made again once its lease runs out: at-least-once.
    """

    async def record(self, row: AttemptRow) -> None: ...


class WebhookPoster(Protocol):
    """One POST to an endpoint -> `AttemptResult`; no database.

    Never raises: every answer and every way of not answering is a result. One deadline
    covers the attempt; redirects are not followed; an address the SSRF guard refuses is
    BLOCKED without a connection.
    """

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> AttemptResult: ...


class TargetLookup(Protocol):
    """The registry's current settings of a webhook (url, opened secret, enabled, schedule).

    A change in the registry shows within the cache's time to live at most.
    """

    async def get(self, webhook_id: UUID) -> Target | None:
        """The webhook's target; None when it does not exist."""
        ...

    def mark_disabled(self, webhook_id: UUID) -> None:
        """Stop sending to it at once, before the registry's change comes back round."""
        ...
