"""asyncpg SQL: reads of the delivery schema (never written here) and of the registry's
webhooks, and the outbox for orders."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg

from services.registry import outbox
from services.registry.audit import repository as audit_log
from services.registry.audit.models import AuditEntry
from services.registry.deliveries.models import STATUSES, AttemptRow, DeliveryRow
from services.registry.deliveries.stats import HealthRow, StatsRow
from services.registry.outbox import OutboxEntry
from services.registry.webhooks.models import WebhookRow
from services.registry.webhooks.repository import WebhookSql
from shared.partitions import Span, day_start, kept_span, planned_limit, within_span

_COLUMNS = (
    "id, webhook_id, event_id, event, payload, status, attempts, last_attempt_at,"
    " next_attempt_at, status_code, last_error, created_at, updated_at"
)


def window_days(kept: Span | None, since: datetime | None, until: datetime | None) -> Span | None:
    """The whole UTC days a page of the window `since` (inclusive) to `until` (exclusive) reads:
    `kept` narrowed to the days the window touches, so Postgres plans only their partitions.
    Whole days, as `kept_span`'s: the statement's text stays the same for every window within
    the same days. None: no bounds to name (no `kept`, and the window open on a side). The
    span may be empty (start >= end): the window lies outside the days kept."""
    start = None if since is None else day_start(since.astimezone(UTC).date())
    end = None if until is None else _end_of_day(until)
    if kept is None:
        return None if start is None or end is None else (start, end)
    return max(kept[0], start or kept[0]), min(kept[1], end or kept[1])


def _end_of_day(until: datetime) -> datetime | None:
    """The end of the last UTC day an exclusive `until` reaches into; None past year 9999."""
    last = until.astimezone(UTC)
    start = day_start(last.date())
    if last == start:
        return start
    try:
        return start + timedelta(days=1)
    except OverflowError:
        return None


def page_query(
    organization_id: UUID,
    webhook_id: UUID,
    *,
    status: str | None,
    limit: int,
    after: tuple[datetime, UUID] | None,
    kept: Span | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[str, list[object]]:
    """The statement and arguments of one page of a webhook's deliveries, newest first by
    (created_at, id), created from `since` (inclusive) to `until` (exclusive) when given;
    `kept`: the days a delivery can have (`kept_span`), named as literals narrowed to the
    window's days (`window_days`). A first page reads up to `planned_limit(limit)` rows: keep
    the first `limit`."""
    # Only the filters given go into the statement, and the status as a literal of the
    # fixed set: a parameter (or a catch-all `$3 IS NULL OR ...`) keeps a generic plan off
    # the failed deliveries' partial index, so it would walk the log past old failures.
    where, args = ["webhook_id = $1", "organization_id = $2"], [webhook_id, organization_id]
    if status is not None:
        if status not in STATUSES:
            raise ValueError(f"unknown delivery status {status!r}")
        where.append(f"status = '{status}'")
    days = window_days(kept, since, until)
    if days is not None:
        where.append(within_span("created_at", days))
    # The window's own instants as parameters: the literal days keep the plan to their
    # partitions, and its text the same for every window within them.
    if since is not None:
        args.append(since)
        where.append(f"created_at >= ${len(args)}")
    if until is not None:
        args.append(until)
        where.append(f"created_at < ${len(args)}")
    rows = str(planned_limit(limit))  # a first page runs from one cached plan
    if after is not None:
        args += [*after, limit]
        where.append(f"(created_at, id) < (${len(args) - 2}, ${len(args) - 1})")
        rows = f"${len(args)}"
    sql = (
        f"SELECT {_COLUMNS} FROM delivery.deliveries WHERE {' AND '.join(where)}"
        f" ORDER BY created_at DESC, id DESC LIMIT {rows}"
    )
    return sql, args


class PostgresDeliveryLog:
    """DeliveryLog on Postgres. Given `retention_days`, a page reads only the days a delivery
    can have on the day `clock` says (`kept_span`); without, every day and the default
    partition."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        retention_days: int | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._pool = pool
        self._retention_days = retention_days
        self._clock = clock

    async def webhook(self, organization_id: UUID, webhook_id: UUID) -> WebhookRow | None:
        async with self._pool.acquire() as conn:
            return await WebhookSql(conn).get(organization_id, webhook_id)

    async def page(
        self,
        organization_id: UUID,
        webhook_id: UUID,
        *,
        status: str | None,
        limit: int,
        after: tuple[datetime, UUID] | None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[DeliveryRow]:
        days = self._retention_days
        kept = None if days is None else kept_span(self._clock().astimezone(UTC).date(), days)
        span = window_days(kept, since, until)
        if span is not None and span[0] >= span[1]:
            return []  # the window lies outside the days kept: no partition to read
        sql, args = page_query(
            organization_id,
            webhook_id,
            status=status,
            limit=limit,
            after=after,
            kept=kept,
            since=since,
            until=until,
        )
        records = await self._pool.fetch(sql, *args)
        return [DeliveryRow(**dict(r)) for r in records[:limit]]

    async def find(
        self, organization_id: UUID, webhook_id: UUID, delivery_id: UUID
    ) -> DeliveryRow | None:
        # By id alone (the URL names no day): each day's partition is probed on its key.
        record = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM delivery.deliveries"
            " WHERE id = $1 AND webhook_id = $2 AND organization_id = $3",
            delivery_id,
            webhook_id,
            organization_id,
        )
        return DeliveryRow(**dict(record)) if record else None

    async def attempts(self, delivery_id: UUID, created_at: datetime) -> list[AttemptRow]:
        # The delivery's created_at is its attempts' partition key: one day is read.
        records = await self._pool.fetch(
            "SELECT attempt, started_at, duration_ms, status_code, error, response_body,"
            " request_headers FROM delivery.delivery_attempts"
            " WHERE delivery_id = $1 AND delivery_created_at = $2 ORDER BY attempt",
            delivery_id,
            created_at,
        )
        return [AttemptRow(**dict(r)) for r in records]

    async def stats(
        self, webhook_id: UUID, *, period_s: int, since: datetime
    ) -> tuple[list[StatsRow], HealthRow | None]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT bucket_start, attempts, successes, gave_up, latency_ms"
                " FROM delivery.attempt_stats"
                " WHERE webhook_id = $1 AND period_s = $2 AND bucket_start >= $3"
                " ORDER BY bucket_start",
                webhook_id,
                period_s,
                since,
            )
            health = await conn.fetchrow(
                "SELECT last_success_at, last_failure_at, last_error, failure_streak"
                " FROM delivery.webhook_health WHERE webhook_id = $1",
                webhook_id,
            )
        return [StatsRow(**dict(r)) for r in rows], HealthRow(**dict(health)) if health else None

    async def enqueue(
        self, entries: Sequence[OutboxEntry], *, audit: AuditEntry | None = None
    ) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await outbox.enqueue(conn, entries)
            if audit is not None:
                await audit_log.insert(conn, audit)
