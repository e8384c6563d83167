"""asyncpg SQL of the delivery schema (and the one read of registry.webhooks it needs)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from uuid import UUID

import asyncpg
from pydantic_core import PydanticSerializationError, to_json

from services.delivery.attempt_stats import RecordedAttempt, aggregate
from services.delivery.health_store import upsert_health
from services.delivery.ordering import insert_ordered, leave_order
from services.delivery.recoveries import insert_recoveries
from services.delivery.rows import AttemptRow, Job, StoredTarget
from shared.messages import DeliveryRequested, RecoverRequested, RedeliverRequested

# Selected in the order of Job's fields, so `Job.from_record` reads a row by position.
_JOB_COLUMNS = ", ".join(f.name for f in fields(Job))
_D_JOB_COLUMNS = ", ".join(f"d.{f.name}" for f in fields(Job))


@dataclass(frozen=True)
class DeliveryKeys:
    """Deliveries as statements find them: by (id, created_at) pairs, joined as
    `d.id = k.id AND d.created_at = k.created_at`, and the span of their days, given as
    scalars because Postgres can skip the other days' partitions before it starts only on
    those (not on an array, under the generic plan it caches)."""

    ids: list[UUID]
    created: list[datetime]
    earliest: datetime
    latest: datetime

    @classmethod
    def of(cls, pairs: Sequence[tuple[UUID, datetime]]) -> DeliveryKeys:
        """At least one pair."""
        ids, created = [p[0] for p in pairs], [p[1] for p in pairs]
        return cls(ids, created, min(created), max(created))

    @property
    def args(self) -> tuple[list[UUID], list[datetime], datetime, datetime]:
        """$1 to $4 of a statement that joins `_BY_KEY`."""
        return self.ids, self.created, self.earliest, self.latest


# The rows of `DeliveryKeys.args` ($1 to $4) among delivery.deliveries `d`.
_BY_KEY = """unnest($1::uuid[], $2::timestamptz[]) AS k(id, created_at)
        WHERE d.id = k.id AND d.created_at = k.created_at
          AND d.created_at BETWEEN $3 AND $4"""


def job_keys(jobs: Iterable[Job]) -> DeliveryKeys:
    """At least one job."""
    return DeliveryKeys.of([(job.id, job.created_at) for job in jobs])


async def insert_requested(
    conn: asyncpg.Connection,
    requests: Sequence[DeliveryRequested],
    *,
    now: datetime,
    lease_until: datetime,
    traces: Mapping[str, str] | None = None,
) -> list[Job]:
    """Store new deliveries, leased to the caller; a request seen before returns nothing.
    `traces`: the traceparent to store with a delivery, by delivery id.

    Idempotent on (id, created_at), the unique key a day-partitioned table can have (the id
    names the webhook and the event: `DeliveryRequested`): a request read again carries the
    same created_at (the event record's timestamp, stamped by fanout), so ON CONFLICT finds
    the first row.
    """
    if not requests:
        return []
    records = await conn.fetch(
        f"""
        INSERT INTO delivery.deliveries
            (id, webhook_id, organization_id, event_id, event, payload, status, attempts,
             next_attempt_at, lease_until, created_at, updated_at, traceparent)
        SELECT r.id, r.webhook_id, r.organization_id, r.event_id, r.event, r.payload,
               'pending', 0, $7, $8, r.created_at, $7, r.traceparent
        FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                    $9::timestamptz[], $10::text[])
             AS r(id, webhook_id, organization_id, event_id, event, payload, created_at,
                  traceparent)
        ON CONFLICT DO NOTHING
        RETURNING {_JOB_COLUMNS}
        """,
        # The ids as text: asyncpg encodes a uuid from its text, and the message checked
        # the form (`UuidText`); a UUID object each was 3 us a request.
        [r.delivery_id for r in requests],
        [r.webhook_id for r in requests],
        [r.organization_id for r in requests],
        [r.event_id for r in requests],
        [r.event for r in requests],
        [r.body for r in requests],
        now,
        lease_until,
        [r.created_at for r in requests],
        traces_of(requests, traces),
    )
    return [Job.from_record(r) for r in records]


def traces_of(
    requests: Sequence[DeliveryRequested], traces: Mapping[str, str] | None
) -> list[str | None]:
    """Each request's traceparent (None: none), in order, for an unnest."""
    if not traces:
        return [None] * len(requests)
    return [traces.get(r.delivery_id) for r in requests]


async def claim_due(
    conn: asyncpg.Connection,
    *,
    now: datetime,
    lease_until: datetime,
    limit: int,
    skip_webhooks: Sequence[UUID] = (),
) -> list[Job]:
    """Lease up to `limit` due deliveries, the longest claimable first.

    SKIP LOCKED: N replicas never claim the same row; the lease keeps it theirs until the
    attempt is recorded, or until it runs out because the replica died. The claimable index
    (the later of due time and lease, migration 0009) is read a partition after another,
    merged in order, so deliveries leased and in flight are never read; each row claimed is
    then found in its own day's partition (by (id, created_at), pruned as the join runs).
    """
    # RETURNING has no order of its own: the claimed rows are sorted again as they were
    # picked, so a webhook's deliveries reach its lane oldest due first.
    records = await conn.fetch(
        f"""
        WITH claimed AS (
            UPDATE delivery.deliveries d SET lease_until = $2
            FROM (
                SELECT id, created_at FROM delivery.deliveries
                WHERE status = 'pending' AND GREATEST(next_attempt_at, lease_until) <= $1
                  AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)
                  AND NOT (webhook_id = ANY($4::uuid[]))
                ORDER BY GREATEST(next_attempt_at, lease_until)
                LIMIT $3
                FOR UPDATE SKIP LOCKED
            ) due
            WHERE d.id = due.id AND d.created_at = due.created_at
            RETURNING {_D_JOB_COLUMNS},
                      d.next_attempt_at
        )
        SELECT {_JOB_COLUMNS} FROM claimed ORDER BY next_attempt_at, created_at, id
        """,
        now,
        lease_until,
        limit,
        list(skip_webhooks),
    )
    return [Job.from_record(r) for r in records]


async def renew_lease(
    conn: asyncpg.Connection, job: Job, *, lease_until: datetime
) -> datetime | None:
    """Extend a lease we still hold (the same lease, nobody has claimed the delivery since);
    the new lease, or None when the delivery is no longer ours to attempt.

    For an attempt that waited in its lane so long that its lease would run out before the
    attempt could end: the lease then starts again when the attempt starts.
    """
    return await conn.fetchval(
        "UPDATE delivery.deliveries SET lease_until = $3"
        " WHERE id = $1 AND created_at = $5"
        " AND lease_until = $2 AND status = 'pending' AND attempts = $4"
        " RETURNING lease_until",
        job.id,
        job.lease_until,
        lease_until,
        job.attempts,
        job.created_at,
    )


async def release(conn: asyncpg.Connection, jobs: Sequence[Job], *, due_at: datetime) -> None:
    """Give leased deliveries back, due again at `due_at` (this replica has no room now)."""
    if not jobs:
        return
    await conn.execute(
        "UPDATE delivery.deliveries d SET lease_until = NULL, next_attempt_at = $5"
        f" FROM {_BY_KEY} AND d.status = 'pending'",
        *job_keys(jobs).args,
        due_at,
    )


async def record_attempts(
    conn: asyncpg.Connection, rows: Sequence[AttemptRow], *, now: datetime
) -> int:
    """Record attempts and their outcome in one statement; returns how many were recorded.

    Fenced on the attempt count: an attempt whose lease ran out and whose delivery another
    replica has attempted since is not recorded twice.
    """
    return len(await _insert_attempts(conn, rows, now=now))


async def record_attempts_with_health(
    conn: asyncpg.Connection, rows: Sequence[AttemptRow], *, now: datetime
) -> int:
    """`record_attempts`, and in the same transaction the endpoint health of the attempts
    recorded (`attempt_stats`), in one upsert for the batch."""
    async with conn.transaction():
        webhooks = await _insert_attempts(conn, rows, now=now)
        recorded = [
            RecordedAttempt(webhooks[r.delivery_id], r.started_at, r.duration_ms, r.status, r.error)
            for r in rows
            if r.delivery_id in webhooks
        ]
        await upsert_health(conn, *aggregate(recorded), now=now)
    return len(webhooks)


async def _insert_attempts(
    conn: asyncpg.Connection, rows: Sequence[AttemptRow], *, now: datetime
) -> dict[UUID, UUID]:
    """The attempts recorded: delivery id -> its webhook id. Each delivery is found by
    (id, created_at) within the batch's days, and its attempt lands in the same day."""
    if not rows:
        return {}
    keys = DeliveryKeys.of([(r.delivery_id, r.delivery_created_at) for r in rows])
    records = await conn.fetch(
        """
        WITH input AS (
            SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $5::int[], $6::timestamptz[],
                                 $7::int[], $8::int[], $9::text[], $10::text[], $11::text[],
                                 $12::timestamptz[], $14::text[])
            AS t(id, created_at, attempt, started_at, duration_ms, status_code, error,
                 response_body, status, next_attempt_at, request_headers)
        ), updated AS (
            UPDATE delivery.deliveries d
            SET status = i.status, attempts = i.attempt, last_attempt_at = i.started_at,
                status_code = i.status_code, last_error = i.error,
                next_attempt_at = i.next_attempt_at, lease_until = NULL, updated_at = $13
            FROM input i
            WHERE d.id = i.id AND d.created_at = i.created_at
              AND d.created_at BETWEEN $3 AND $4 AND d.attempts = i.attempt - 1
            RETURNING d.id, d.webhook_id
        ), inserted AS (
            INSERT INTO delivery.delivery_attempts
                (delivery_id, delivery_created_at, attempt, started_at, duration_ms,
                 status_code, error, response_body, request_headers)
            SELECT i.id, i.created_at, i.attempt, i.started_at, i.duration_ms, i.status_code,
                   i.error, i.response_body, i.request_headers::jsonb
            FROM input i JOIN updated u ON u.id = i.id
            ON CONFLICT DO NOTHING
            RETURNING delivery_id
        )
        SELECT n.delivery_id, u.webhook_id FROM inserted n JOIN updated u ON u.id = n.delivery_id
        """,
        *keys.args,
        [r.attempt for r in rows],
        [r.started_at for r in rows],
        [r.duration_ms for r in rows],
        [r.status_code for r in rows],
        [r.error for r in rows],
        [r.response_body for r in rows],
        [r.status for r in rows],
        [r.next_attempt_at for r in rows],
        now,
        # As text: the pool's JSON codec does not reach into arrays.
        [_json(r.request_headers) for r in rows],
    )
    return {r["delivery_id"]: r["webhook_id"] for r in records}


def _json(headers: dict[str, str] | None) -> str | None:
    """The headers as JSON text, for a jsonb column (stored alike however it is spelled)."""
    if headers is None:
        return None
    try:
        # pydantic-core's encoder: 0.7 us a row against json.dumps' 4.2.
        return to_json(headers).decode()
    except PydanticSerializationError:  # a lone surrogate: escaped, and refused by Postgres
        return json.dumps(headers, separators=(",", ":"))


async def stop_deliveries(
    conn: asyncpg.Connection, jobs: Sequence[Job], *, reason: str, now: datetime
) -> None:
    """End deliveries without an attempt: their webhook was disabled or deleted."""
    if not jobs:
        return
    await conn.execute(
        "UPDATE delivery.deliveries d SET status = 'failed', last_error = $5,"
        " next_attempt_at = NULL, lease_until = NULL, updated_at = $6"
        f" FROM {_BY_KEY} AND d.status = 'pending'",
        *job_keys(jobs).args,
        reason,
        now,
    )


async def hold_deliveries(conn: asyncpg.Connection, jobs: Sequence[Job], *, now: datetime) -> None:
    """Keep deliveries of a disabled webhook pending, unleased and due never (next_attempt_at
    NULL: out of every claim) until `recoveries.resume_held` makes them due again."""
    if not jobs:
        return
    await conn.execute(
        "UPDATE delivery.deliveries d SET next_attempt_at = NULL, lease_until = NULL,"
        f" updated_at = $5 FROM {_BY_KEY} AND d.status = 'pending'",
        *job_keys(jobs).args,
        now,
    )


async def rearm(
    conn: asyncpg.Connection,
    *,
    delivery_id: UUID,
    webhook_id: UUID,
    organization_id: UUID,
    now: datetime,
) -> bool:
    """Make a stored delivery due now, even after it failed (a redelivery request).

    By id alone (the order carries no created_at), so every day's partition is probed on its
    primary key: this runs on an operator's request only, never on the delivery path."""
    result = await conn.execute(
        "UPDATE delivery.deliveries SET status = 'pending', next_attempt_at = $4,"
        " updated_at = $4, waiting = false"
        " WHERE id = $1 AND webhook_id = $2 AND organization_id = $3",
        delivery_id,
        webhook_id,
        organization_id,
        now,
    )
    # Sent when asked, outside its room's order (ordering.py).
    await leave_order(conn, delivery_id)
    return result.endswith(" 1")


async def load_jobs(conn: asyncpg.Connection, keys: Sequence[tuple[UUID, datetime]]) -> list[Job]:
    """The deliveries of `keys` as jobs, in that order (those still there)."""
    if not keys:
        return []
    records = await conn.fetch(
        f"SELECT {_D_JOB_COLUMNS} FROM delivery.deliveries d, {_BY_KEY}",
        *DeliveryKeys.of(keys).args,
    )
    found = {r["id"]: Job.from_record(r) for r in records}
    return [found[i] for i, _ in keys if i in found]


async def load_target(conn: asyncpg.Connection, webhook_id: UUID) -> StoredTarget | None:
    record = await conn.fetchrow(
        "SELECT url, secret_ciphertext, legacy_secret, enabled, retry_schedule,"
        " previous_secret_ciphertext, previous_secret_until, headers_ciphertext,"
        " send_traceparent FROM registry.webhooks WHERE id = $1",
        webhook_id,
    )
    if record is None:
        return None
    schedule = record["retry_schedule"]
    return StoredTarget(
        record["url"],
        record["secret_ciphertext"],
        record["legacy_secret"],
        record["enabled"],
        tuple(float(s) for s in schedule) if schedule is not None else None,
        record["previous_secret_ciphertext"],
        record["previous_secret_until"],
        record["headers_ciphertext"],
        record["send_traceparent"],
    )


class PostgresDeliveryStore:
    """`DeliveryStore` on the delivery schema: each call one connection of the pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

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
        ordered = [r for r in requested if r.ordering == "room"]
        unordered = [r for r in requested if r.ordering != "room"] if ordered else requested
        # Only unordered requests make one statement, atomic by itself: no BEGIN and COMMIT
        # round trips around it.
        single = not (ordered or redeliver or recover)
        async with (
            self._pool.acquire() as conn,
            contextlib.nullcontext() if single else conn.transaction(),
        ):
            jobs = await insert_requested(
                conn, unordered, now=now, lease_until=lease_until, traces=traces
            )
            if ordered:
                started = await insert_ordered(
                    conn, ordered, now=now, lease_until=lease_until, traces=traces
                )
                jobs += await load_jobs(conn, started)
            await insert_recoveries(conn, recover, now=now)
            found = [
                await rearm(
                    conn,
                    delivery_id=UUID(order.delivery_id),
                    webhook_id=UUID(order.webhook_id),
                    organization_id=UUID(order.organization_id),
                    now=now,
                )
                for order in redeliver
            ]
        return jobs, found

    async def claim_due(
        self, *, now: datetime, lease_until: datetime, limit: int, skip_webhooks: Sequence[UUID]
    ) -> list[Job]:
        async with self._pool.acquire() as conn:
            return await claim_due(
                conn, now=now, lease_until=lease_until, limit=limit, skip_webhooks=skip_webhooks
            )

    async def renew_lease(self, job: Job, *, lease_until: datetime) -> datetime | None:
        async with self._pool.acquire() as conn:
            return await renew_lease(conn, job, lease_until=lease_until)

    async def release(self, jobs: Sequence[Job], *, due_at: datetime) -> None:
        async with self._pool.acquire() as conn:
            await release(conn, jobs, due_at=due_at)

    async def stop(self, jobs: Sequence[Job], *, reason: str, now: datetime) -> None:
        async with self._pool.acquire() as conn:
            await stop_deliveries(conn, jobs, reason=reason, now=now)

    async def hold(self, jobs: Sequence[Job], *, now: datetime) -> None:
        async with self._pool.acquire() as conn:
            await hold_deliveries(conn, jobs, now=now)
