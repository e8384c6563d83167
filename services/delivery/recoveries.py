"""asyncpg SQL that makes stored deliveries due again: held ones (their webhook was disabled)
and the failed ones of recovery jobs.

Each batch is one statement bounded by a LIMIT; rows are taken with SKIP LOCKED, or under the
recovery job's row lock, so N replicas never make the same delivery due twice at once. Every
delivery a batch picks is then changed by (id, created_at), in its own day's partition.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID

import asyncpg

from shared.messages import RecoverRequested

_NO_WEBHOOK = UUID(int=0)
_RECOVERY_COLUMNS = (
    "job_id, webhook_id, organization_id, since, until, marked, done, exhausted,"
    " after_created_at, after_id"
)


@dataclass(frozen=True)
class Recovery:
    """A running recovery job as its turn found it."""

    job_id: UUID
    webhook_id: UUID
    organization_id: UUID
    since: datetime
    until: datetime
    marked: int  # deliveries made due so far
    done: int  # of those, attempted since (or gone)
    exhausted: bool  # no failed delivery of the window is left to mark
    after_created_at: datetime | None  # the last delivery marked, by (created_at, id)
    after_id: UUID | None

    @property
    def outstanding(self) -> int:
        """Marked and not attempted yet: due, in flight or held."""
        return self.marked - self.done


async def insert_recoveries(
    conn: asyncpg.Connection, orders: Sequence[RecoverRequested], *, now: datetime
) -> None:
    """Start each job not started before (a re-read order starts nothing)."""
    if not orders:
        return
    await conn.execute(
        """
        INSERT INTO delivery.recoveries
            (job_id, webhook_id, organization_id, since, until, status, created_at, updated_at)
        SELECT o.job_id, o.webhook_id, o.organization_id, o.since, o.until, 'running', $6, $6
        FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::timestamptz[], $5::timestamptz[])
             AS o(job_id, webhook_id, organization_id, since, until)
        ON CONFLICT DO NOTHING
        """,
        [UUID(o.job_id) for o in orders],
        [UUID(o.webhook_id) for o in orders],
        [UUID(o.organization_id) for o in orders],
        [o.since for o in orders],
        [o.until for o in orders],
        now,
    )


# One batch of a recovery: the next failed deliveries of its window after its cursor, made due
# a microsecond apart (claims then take them in order of creation), each noted as an item.
_MARK_SQL = """
WITH picked AS (
    SELECT id, created_at FROM delivery.deliveries
    WHERE webhook_id = $1 AND status = 'failed'
      AND created_at >= $2 AND created_at < $3
      AND ($4::timestamptz IS NULL OR (created_at, id) > ($4, $5::uuid))
    ORDER BY created_at, id LIMIT $6
    FOR UPDATE
), ranked AS (
    SELECT id, created_at, row_number() OVER (ORDER BY created_at, id) AS rank
    FROM picked
), marked AS (
    -- Due a microsecond apart: claims take them in order of creation.
    UPDATE delivery.deliveries d
    SET status = 'pending',
        next_attempt_at = $7::timestamptz + r.rank::float8 * interval '1 microsecond',
        lease_until = NULL, updated_at = $7
    FROM ranked r
    WHERE d.id = r.id AND d.created_at = r.created_at
      AND d.created_at >= $2 AND d.created_at < $3
    RETURNING d.id, d.attempts, d.created_at
), items AS (
    INSERT INTO delivery.recovery_items
        (job_id, delivery_id, delivery_created_at, attempts_before)
    SELECT $8, id, created_at, attempts FROM marked
)
SELECT id, created_at FROM marked ORDER BY created_at, id
"""


class PostgresRecoveryTurn:
    """`RecoveryTurn` on one connection, inside the transaction that holds the job's row."""

    def __init__(self, conn: asyncpg.Connection, recovery: Recovery) -> None:
        self._conn = conn
        self.recovery = recovery

    async def settle(self, *, now: datetime) -> Recovery:
        # Every item's delivery was created in the job's window: only its days are read.
        done = await self._conn.fetchval(
            """
            WITH settled AS (
                UPDATE delivery.recovery_items i SET attempted = true
                WHERE i.job_id = $1 AND NOT i.attempted
                  AND NOT EXISTS (SELECT 1 FROM delivery.deliveries d
                                  WHERE d.id = i.delivery_id
                                    AND d.created_at = i.delivery_created_at
                                    AND d.created_at >= $3 AND d.created_at < $4
                                    AND d.attempts <= i.attempts_before)
                RETURNING 1
            )
            UPDATE delivery.recoveries SET done = done + (SELECT count(*) FROM settled),
                updated_at = $2
            WHERE job_id = $1
            RETURNING done
            """,
            self.recovery.job_id,
            now,
            self.recovery.since,
            self.recovery.until,
        )
        self.recovery = replace(self.recovery, done=done)
        return self.recovery

    async def mark(self, *, limit: int, now: datetime) -> int:
        r = self.recovery
        # FOR UPDATE, not SKIP LOCKED: the cursor moves past every row it reads, so none may
        # be skipped; a row that changed meanwhile is read again and left if no longer failed.
        marked = await self._conn.fetch(
            _MARK_SQL,
            r.webhook_id,
            r.since,
            r.until,
            r.after_created_at,
            r.after_id,
            limit,
            now,
            r.job_id,
        )
        last = marked[-1] if marked else None
        await self._conn.execute(
            "UPDATE delivery.recoveries SET marked = marked + $2, exhausted = ($2 = 0),"
            " after_created_at = coalesce($3, after_created_at),"
            " after_id = coalesce($4, after_id), updated_at = $5 WHERE job_id = $1",
            r.job_id,
            len(marked),
            last["created_at"] if last else None,
            last["id"] if last else None,
            now,
        )
        self.recovery = replace(
            r,
            marked=r.marked + len(marked),
            exhausted=not marked,
            after_created_at=last["created_at"] if last else r.after_created_at,
            after_id=last["id"] if last else r.after_id,
        )
        return len(marked)

    async def finish(self, status: str, *, error: str | None, now: datetime) -> None:
        await self._conn.execute(
            "UPDATE delivery.recoveries SET status = $2, error = $3, updated_at = $4"
            " WHERE job_id = $1",
            self.recovery.job_id,
            status,
            error,
            now,
        )


class PostgresUpkeep:
    """`UpkeepStore` on the delivery schema (and the registry's webhooks, read only)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def held_webhooks(self, *, after: UUID | None, limit: int) -> list[UUID]:
        # A skip scan of the held index: one probe per webhook, however many it holds.
        records = await self._pool.fetch(
            """
            WITH RECURSIVE held(webhook_id) AS (
                (SELECT webhook_id FROM delivery.deliveries
                 WHERE status = 'pending' AND next_attempt_at IS NULL AND NOT waiting
                   AND webhook_id > $1
                 ORDER BY webhook_id LIMIT 1)
                UNION ALL
                SELECT (SELECT d.webhook_id FROM delivery.deliveries d
                        WHERE d.status = 'pending' AND d.next_attempt_at IS NULL
                          AND NOT d.waiting
                          AND d.webhook_id > h.webhook_id
                        ORDER BY d.webhook_id LIMIT 1)
                FROM held h WHERE h.webhook_id IS NOT NULL
            )
            SELECT webhook_id FROM held WHERE webhook_id IS NOT NULL LIMIT $2
            """,
            after or _NO_WEBHOOK,
            limit,
        )
        return [r["webhook_id"] for r in records]

    async def resume_held(self, webhook_id: UUID, *, now: datetime, limit: int) -> int:
        # SKIP LOCKED: replicas resuming the same webhook take different rows.
        result = await self._pool.execute(
            """
            UPDATE delivery.deliveries d
            SET next_attempt_at = $3::timestamptz + h.rank::float8 * interval '1 microsecond',
                updated_at = $3
            FROM (
                SELECT id, created_at, row_number() OVER (ORDER BY created_at, id) AS rank
                FROM (SELECT id, created_at FROM delivery.deliveries
                      WHERE webhook_id = $1 AND status = 'pending' AND next_attempt_at IS NULL
                        AND NOT waiting
                      ORDER BY created_at, id LIMIT $2
                      FOR UPDATE SKIP LOCKED) picked
            ) h
            WHERE d.id = h.id AND d.created_at = h.created_at
            """,
            webhook_id,
            limit,
            now,
        )
        return int(result.split()[-1])

    async def fail_held(self, webhook_id: UUID, *, reason: str, now: datetime, limit: int) -> int:
        result = await self._pool.execute(
            """
            UPDATE delivery.deliveries SET status = 'failed', last_error = $2,
                next_attempt_at = NULL, lease_until = NULL, updated_at = $3
            WHERE (id, created_at) IN (
                SELECT id, created_at FROM delivery.deliveries
                WHERE webhook_id = $1 AND status = 'pending' AND next_attempt_at IS NULL
                  AND NOT waiting
                LIMIT $4 FOR UPDATE SKIP LOCKED)
            """,
            webhook_id,
            reason,
            now,
            limit,
        )
        return int(result.split()[-1])

    async def running_recoveries(self, *, limit: int) -> list[UUID]:
        records = await self._pool.fetch(
            "SELECT job_id FROM delivery.recoveries WHERE status = 'running'"
            " ORDER BY updated_at LIMIT $1",
            limit,
        )
        return [r["job_id"] for r in records]

    @asynccontextmanager
    async def recovery_turn(self, job_id: UUID) -> AsyncIterator[PostgresRecoveryTurn | None]:
        async with self._pool.acquire() as conn, conn.transaction():
            # SKIP LOCKED: a job another replica is advancing is left to it.
            record = await conn.fetchrow(
                f"SELECT {_RECOVERY_COLUMNS} FROM delivery.recoveries"
                " WHERE job_id = $1 AND status = 'running' FOR UPDATE SKIP LOCKED",
                job_id,
            )
            yield None if record is None else PostgresRecoveryTurn(conn, Recovery(**dict(record)))
