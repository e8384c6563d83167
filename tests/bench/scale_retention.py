"""Part 9's retention figure: a day holding a million deliveries, with their attempts, removed
by the delivery schema's retention run (services/delivery/retention.py): its partitions are
dropped whole, so the time does not grow with the day's rows.

The day is ROOMHOOKS_RETENTION_DAYS + 10 days old, filled fast by INSERT ... SELECT over
generate_series straight into its partitions: every delivery has one attempt, a tenth of them
failed after four (about 1.3 attempts a delivery)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg

from services.delivery.retention import ATTEMPTS, DELIVERIES, PLAN
from shared.partitions import create_partitions, day_start, partition_name
from shared.retention import RetentionReport, run_retention

# The day's age past the retention period: old enough whatever the clock says meanwhile.
DAYS_PAST = 10
WEBHOOKS = 20
# A retention run already under way (the delivery service runs one each hour) holds the lock.
LOCK_WAIT_S = 60.0

_FILL_DELIVERIES = """
INSERT INTO delivery.{partition}
    (id, webhook_id, organization_id, event_id, event, payload, status, attempts,
     last_attempt_at, status_code, last_error, created_at, updated_at)
SELECT gen_random_uuid(), ($3::uuid[])[1 + g % {webhooks}], $2, 'retention-' || g,
       'participant.joined',
       '{{"id":"retention-' || g || '","event":"participant.joined","room":{{"id":"room-'
           || g % 500 || '","name":"Weekly planning"}},"pad":"' || repeat('x', 180) || '"}}',
       CASE WHEN g % 10 = 0 THEN 'failed' ELSE 'success' END,
       CASE WHEN g % 10 = 0 THEN 4 ELSE 1 END,
       at, CASE WHEN g % 10 = 0 THEN 503 ELSE 200 END,
       CASE WHEN g % 10 = 0 THEN 'HTTP 503' END, at, at
FROM generate_series(1, $1) g,
     LATERAL (SELECT $4::timestamptz + (g * 86000.0 / $1) * interval '1 second' AS at) t
"""
_FILL_ATTEMPTS = """
INSERT INTO delivery.{partition}
    (delivery_id, delivery_created_at, attempt, started_at, duration_ms, status_code, error)
SELECT d.id, d.created_at, n, d.created_at + (n - 1) * interval '6 seconds', 40 + n,
       d.status_code, CASE WHEN d.status = 'failed' THEN 'HTTP 503' END
FROM delivery.{deliveries} d, generate_series(1, d.attempts) n
"""


async def fill_day(
    conn: asyncpg.Connection, *, deliveries: int, day_start_at: datetime
) -> dict[str, int]:
    """The day's partitions made and filled; how many rows each got."""
    day = day_start_at.date()
    for table in (DELIVERIES, ATTEMPTS):
        await create_partitions(conn, table, today=day, ahead=0)
    days_deliveries = partition_name(DELIVERIES.table, day)
    days_attempts = partition_name(ATTEMPTS.table, day)
    webhooks = [uuid.uuid4() for _ in range(WEBHOOKS)]
    await conn.execute(
        _FILL_DELIVERIES.format(partition=days_deliveries, webhooks=WEBHOOKS),
        deliveries,
        uuid.uuid4(),
        webhooks,
        day_start_at,
    )
    status = await conn.execute(
        _FILL_ATTEMPTS.format(partition=days_attempts, deliveries=days_deliveries)
    )
    return {"deliveries": deliveries, "attempts": int(status.split()[-1])}


async def _run_when_free(conn: asyncpg.Connection, retention_days: int) -> RetentionReport:
    """One retention run of the plan, once no other process is running it."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        report = await run_retention(conn, PLAN, retention_days=retention_days)
        if report.ran or time.monotonic() > deadline:
            return report
        await asyncio.sleep(1.0)


async def measure(
    database_url: str,
    *,
    deliveries: int,
    retention_days: int,
    progress: Callable[[str], None],
) -> dict:
    """Fill a day past the retention period, then time the retention run that removes it."""
    conn = await asyncpg.connect(database_url)
    try:
        day = datetime.now(UTC).date() - timedelta(days=retention_days + DAYS_PAST)
        progress(f"retention: filling {day} with {deliveries:,} deliveries")
        started = time.monotonic()
        filled = await fill_day(conn, deliveries=deliveries, day_start_at=day_start(day))
        fill_s = time.monotonic() - started
        await conn.execute("CHECKPOINT")  # the fill's writes are not the drop's to flush
        progress("retention: removing the day")
        report = await _run_when_free(conn, retention_days)
        names = [partition_name(t.table, day) for t in (DELIVERIES, ATTEMPTS)]
        left = await conn.fetchval(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'delivery' AND c.relname = ANY($1::text[])",
            names,
        )
    finally:
        await conn.close()
    removed = report.ran and left == 0 and all(name in report.dropped for name in names)
    return {
        "seconds": report.took_s if removed else None,
        "note": "" if removed else "the day was not removed by this run",
        "day": day.isoformat(),
        **filled,
        "fill_s": round(fill_s, 1),
        "dropped": report.dropped,
        "deleted": report.deleted,
    }
