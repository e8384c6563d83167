"""asyncpg SQL for jobs: the registry's own (registry.jobs, with the outbox) and reads of the
delivery service's progress and failed deliveries (delivery.*, never written here)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import asyncpg

from services.registry import outbox
from services.registry.audit import repository as audit_log
from services.registry.audit.models import AuditEntry
from services.registry.jobs.models import QUEUED_COUNTS_FOR, JobRow, Progress, TooManyJobs
from services.registry.outbox import OutboxEntry

_JOB_COLUMNS = "id, organization_id, kind, webhook_id, since, until, total, created_at"


class PostgresJobs:
    """`JobStore` on Postgres."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def webhook_exists(self, organization_id: UUID, webhook_id: UUID) -> bool:
        return bool(
            await self._pool.fetchval(
                "SELECT 1 FROM registry.webhooks WHERE organization_id = $1 AND id = $2",
                organization_id,
                webhook_id,
            )
        )

    async def count_failed(self, webhook_id: UUID, *, since: datetime, until: datetime) -> int:
        return await self._pool.fetchval(
            "SELECT count(*) FROM delivery.deliveries WHERE webhook_id = $1"
            " AND status = 'failed' AND created_at >= $2 AND created_at < $3",
            webhook_id,
            since,
            until,
        )

    async def insert(
        self,
        row: JobRow,
        entries: Sequence[OutboxEntry],
        *,
        open_max: int,
        audit: AuditEntry | None = None,
    ) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            # The account's row lock: two orders at once cannot both pass the bound.
            await conn.execute(
                "SELECT 1 FROM registry.accounts WHERE id = $1 FOR NO KEY UPDATE",
                row.organization_id,
            )
            # A queued job whose order never arrived (a broker that lost it) stops counting
            # after QUEUED_COUNTS_FOR: it cannot take the account's room for good.
            unfinished = await conn.fetchval(
                "SELECT count(*) FROM registry.jobs j"
                " LEFT JOIN delivery.recoveries r ON r.job_id = j.id"
                " WHERE j.organization_id = $1 AND (r.status = 'running'"
                "  OR (r.status IS NULL AND j.created_at > $2))",
                row.organization_id,
                row.created_at - QUEUED_COUNTS_FOR,
            )
            if unfinished >= open_max:
                raise TooManyJobs(open_max)
            await conn.execute(
                f"INSERT INTO registry.jobs ({_JOB_COLUMNS})"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                row.id,
                row.organization_id,
                row.kind,
                row.webhook_id,
                row.since,
                row.until,
                row.total,
                row.created_at,
            )
            await outbox.enqueue(conn, entries)
            if audit is not None:
                await audit_log.insert(conn, audit)

    async def get(
        self, organization_id: UUID, job_id: UUID
    ) -> tuple[JobRow, Progress | None] | None:
        record = await self._pool.fetchrow(
            f"SELECT {', '.join('j.' + c.strip() for c in _JOB_COLUMNS.split(','))},"
            " r.status, r.marked, r.done, r.exhausted, r.error, r.updated_at"
            " FROM registry.jobs j LEFT JOIN delivery.recoveries r ON r.job_id = j.id"
            " WHERE j.organization_id = $1 AND j.id = $2",
            organization_id,
            job_id,
        )
        if record is None:
            return None
        values = dict(record)
        row = JobRow(**{c.strip(): values[c.strip()] for c in _JOB_COLUMNS.split(",")})
        if values["status"] is None:
            return row, None
        progress = Progress(
            values["status"],
            values["marked"],
            values["done"],
            values["exhausted"],
            values["error"],
            values["updated_at"],
        )
        return row, progress
