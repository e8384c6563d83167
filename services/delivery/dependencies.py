"""What `DeliveryService` depends on, as Protocols with their contracts.

The real adapters: `repository.PostgresDeliveryStore`, `dispatcher.Dispatcher`,
`recorder.AttemptRecorder`, `targets.Targets`. The fakes in tests/support/delivery_fakes.py
pass the same contract suites (tests/integration/test_delivery_contracts.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol
from uuid import UUID

from services.delivery.policy import AttemptResult
from services.delivery.repository import AttemptRow, Job, Target
from shared.messages import DeliveryRequested, RedeliverRequested


class DeliveryStore(Protocol):
    """Durable deliveries and the leases that make one replica attempt each at a time.

    Idempotent: a request stored before stores nothing new. A delivery is claimed only when
    due and not leased; a lease is held until recorded, released, stopped or run out.
    """

    async def store_requests(
        self,
        requested: Sequence[DeliveryRequested],
        redeliver: Sequence[RedeliverRequested],
        *,
        now: datetime,
        lease_until: datetime,
    ) -> tuple[list[Job], list[bool]]:
        """In one transaction: store the new requests, leased until `lease_until`, and make
        each redelivered one due `now`; the new jobs, and per redelivery whether it exists."""
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

    async def release(self, ids: Sequence[UUID], *, due_at: datetime) -> None:
        """Give pending deliveries back, unleased, due at `due_at`."""
        ...

    async def stop(self, ids: Sequence[UUID], *, reason: str, now: datetime) -> None:
        """End pending deliveries without an attempt (their webhook is gone or disabled)."""
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
