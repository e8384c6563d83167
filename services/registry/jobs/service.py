"""Job use cases: ordering a recovery and reading a job's progress.

The registry never writes the delivery schema: a recovery is a row of registry.jobs and, in
the same transaction, a `RecoverRequested` order on `roomhooks.deliveries` in the outbox. The
delivery service runs the job from Postgres and keeps its progress, which `get` reads.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol
from uuid import UUID

import structlog

from services.registry.audit.models import Actor, AuditEntry
from services.registry.audit.recorder import audit_entry, safe_change
from services.registry.deliveries.records import order_entry
from services.registry.errors import NotFound, parse_id
from services.registry.jobs.models import (
    OPEN_JOBS_MAX,
    Job,
    JobRow,
    Progress,
    RecoverInput,
    public_job,
    recovery_window,
)
from services.registry.outbox import OutboxEntry
from shared.kafka import Topics
from shared.messages import RecoverRequested

log = structlog.get_logger(__name__)


class JobStore(Protocol):
    """Jobs inside their account (registry.jobs) with the delivery service's progress on
    each, and the reads an order needs (delivery.* is read, never written)."""

    async def webhook_exists(self, organization_id: UUID, webhook_id: UUID) -> bool: ...

    async def count_failed(self, webhook_id: UUID, *, since: datetime, until: datetime) -> int:
        """The webhook's failed deliveries created in [since, until)."""
        ...

    async def insert(
        self,
        row: JobRow,
        entries: Sequence[OutboxEntry],
        *,
        open_max: int,
        audit: AuditEntry | None = None,
    ) -> None:
        """Store the job, its outbox entries and `audit` in one transaction; TooManyJobs
        (nothing stored) when its account already has `open_max` jobs running, or queued for
        less than QUEUED_COUNTS_FOR."""
        ...

    async def get(
        self, organization_id: UUID, job_id: UUID
    ) -> tuple[JobRow, Progress | None] | None:
        """The job and its progress (None: not begun yet); None when the account has no such
        job."""
        ...


class JobService:
    """Recovery orders and job progress for one account at a time."""

    def __init__(
        self,
        jobs: JobStore,
        topics: Topics,
        clock: Callable[[], datetime],
        *,
        open_max: int = OPEN_JOBS_MAX,
    ) -> None:
        self._jobs = jobs
        self._topics = topics
        self._clock = clock
        self._open_max = open_max

    async def recover(
        self, account_id: str, webhook_id: str, body: RecoverInput, *, actor: Actor | None = None
    ) -> Job:
        """Order every failed delivery of the webhook created in the window sent again;
        `actor` is audited."""
        organization, webhook = parse_id(account_id), parse_id(webhook_id)
        if not await self._jobs.webhook_exists(organization, webhook):
            raise NotFound(webhook_id)
        now = self._clock()
        since, until = recovery_window(body.since, body.until, now=now)
        row = JobRow(
            id=uuid.uuid4(),
            organization_id=organization,
            kind="recover",
            webhook_id=webhook,
            since=since,
            until=until,
            total=await self._jobs.count_failed(webhook, since=since, until=until),
            created_at=now,
        )
        order = RecoverRequested(
            job_id=str(row.id),
            webhook_id=str(webhook),
            organization_id=str(organization),
            since=since,
            until=until,
            requested_at=now,
        )
        window = [safe_change(f, str(v)) for f, v in (("since", since), ("until", until))]
        audit = audit_entry(
            actor,
            account_id,
            "webhook.recovery_requested",
            webhook,
            [safe_change("job_id", str(row.id)), *window],
            now=now,
        )
        await self._jobs.insert(
            row, [order_entry(self._topics, order)], open_max=self._open_max, audit=audit
        )
        log.info(
            "job.recovery_ordered",
            account_id=account_id,
            webhook_id=str(webhook),
            job_id=str(row.id),
            total=row.total,
        )
        return public_job(row, None)

    async def get(self, account_id: str, job_id: str) -> Job:
        found = await self._jobs.get(parse_id(account_id), parse_id(job_id))
        if found is None:
            raise NotFound(job_id)
        return public_job(*found)
