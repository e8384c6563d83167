"""asyncpg SQL of endpoint health: the batch upsert the recorder makes with its attempts, and
auto-disable's sweep of webhooks that stopped succeeding."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from services.delivery.attempt_stats import HealthChange, StatsBucket


async def upsert_health(
    conn: asyncpg.Connection,
    buckets: Sequence[StatsBucket],
    changes: Sequence[HealthChange],
    *,
    now: datetime,
) -> None:
    """Add a batch's stats to their minute and hour rows and merge its health changes, in
    one statement."""
    if not buckets:
        return
    await conn.execute(
        """
        WITH stats AS (
            INSERT INTO delivery.attempt_stats AS s
                (webhook_id, period_s, bucket_start, attempts, successes, gave_up, latency_ms)
            SELECT w, p, b, a, ok, g, l::int[]
            FROM unnest($1::uuid[], $2::int[], $3::timestamptz[], $4::int[], $5::int[],
                        $6::int[], $7::text[]) AS t(w, p, b, a, ok, g, l)
            ON CONFLICT (webhook_id, period_s, bucket_start) DO UPDATE SET
                attempts = s.attempts + EXCLUDED.attempts,
                successes = s.successes + EXCLUDED.successes,
                gave_up = s.gave_up + EXCLUDED.gave_up,
                latency_ms = ARRAY(
                    SELECT x + y FROM unnest(s.latency_ms, EXCLUDED.latency_ms)
                        WITH ORDINALITY AS h(x, y, n) ORDER BY n)
        )
        INSERT INTO delivery.webhook_health AS h
            (webhook_id, last_success_at, last_failure_at, last_error, failure_streak,
             last_gave_up_at, updated_at)
        SELECT *, $14::timestamptz FROM unnest($8::uuid[], $9::timestamptz[],
            $10::timestamptz[], $11::text[], $12::int[], $13::timestamptz[])
        ON CONFLICT (webhook_id) DO UPDATE SET
            last_error = CASE WHEN EXCLUDED.last_failure_at
                    >= COALESCE(h.last_failure_at, '-infinity') THEN EXCLUDED.last_error
                ELSE h.last_error END,
            failure_streak = CASE WHEN EXCLUDED.last_success_at IS NOT NULL
                THEN EXCLUDED.failure_streak ELSE h.failure_streak + EXCLUDED.failure_streak END,
            last_success_at = GREATEST(h.last_success_at, EXCLUDED.last_success_at),
            last_failure_at = GREATEST(h.last_failure_at, EXCLUDED.last_failure_at),
            last_gave_up_at = GREATEST(h.last_gave_up_at, EXCLUDED.last_gave_up_at),
            updated_at = EXCLUDED.updated_at
        """,
        [b.webhook_id for b in buckets],
        [b.period_s for b in buckets],
        [b.bucket_start for b in buckets],
        [b.attempts for b in buckets],
        [b.successes for b in buckets],
        [b.gave_up for b in buckets],
        ["{" + ",".join(map(str, b.latency_ms)) + "}" for b in buckets],
        [c.webhook_id for c in changes],
        [c.last_success_at for c in changes],
        [c.last_failure_at for c in changes],
        [c.last_error for c in changes],
        [c.failure_streak for c in changes],
        [c.last_gave_up_at for c in changes],
        now,
    )


@dataclass(frozen=True)
class StaleWebhook:
    """A webhook with no successful attempt since `since` (its creation when it never had
    one) and a delivery failed for good after that; `organization_id` None: deleted."""

    webhook_id: UUID
    organization_id: UUID | None
    enabled: bool
    since: datetime
    last_gave_up_at: datetime
    last_error: str | None


class PostgresStaleWebhooks:
    """`StaleWebhooks` on delivery.webhook_health (and registry.webhooks, read only)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @contextlib.asynccontextmanager
    async def stale_turn(
        self, *, stale_before: datetime, limit: int, now: datetime
    ) -> AsyncIterator[list[StaleWebhook]]:
        async with self._pool.acquire() as conn, conn.transaction():
            # SKIP LOCKED: N replicas sweeping at once never order the same disable twice.
            records = await conn.fetch(
                """
                SELECT h.webhook_id, w.organization_id, COALESCE(w.enabled, false) AS enabled,
                       COALESCE(h.last_success_at, w.created_at, h.updated_at) AS since,
                       h.last_gave_up_at, h.last_error
                FROM delivery.webhook_health h
                LEFT JOIN registry.webhooks w ON w.id = h.webhook_id
                WHERE h.last_gave_up_at IS NOT NULL
                  AND (h.last_success_at IS NULL OR h.last_gave_up_at > h.last_success_at)
                  AND (h.disable_sent_at IS NULL OR h.last_gave_up_at > h.disable_sent_at)
                  AND COALESCE(h.last_success_at, w.created_at, h.updated_at) < $1
                ORDER BY h.last_gave_up_at
                LIMIT $2
                FOR UPDATE OF h SKIP LOCKED
                """,
                stale_before,
                limit,
            )
            stale = [StaleWebhook(**dict(r)) for r in records]
            yield stale
            await conn.execute(
                "UPDATE delivery.webhook_health SET disable_sent_at = $2"
                " WHERE webhook_id = ANY($1::uuid[])",
                [s.webhook_id for s in stale],
                now,
            )
