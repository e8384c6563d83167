"""asyncpg SQL: reads of fanout's event log and of the deliveries and executions its events
reached (none of them written here).

A page's statement names only the filters given, so the planner picks the index that serves
that combination (a catch-all `$n IS NULL OR ...` would be planned once, generically, and a
status filter must be a literal for the refused-events partial index to apply).

The three tables are partitioned by day on the instant fanout stamps an event with (the
event's received_at, its deliveries' and executions' created_at): a page names the days an
event can have as literals, so Postgres reads them newest first, and an event's deliveries and
executions are looked for in its own day first.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg

from services.registry.events.models import EventFilters, EventRow
from shared.partitions import Span, kept_span, planned_limit, within_span

_COLUMNS = (
    "id, event_id, event, room_id, status, reason, {payload} AS payload, webhook_ids,"
    " workflow_ids, received_at"
)
# The accepted event by its row id, else the latest refused one that carried the event id (the
# newest of two rows of one id: a producer that published the event twice, stamped twice). An
# event id says nothing of the day: each partition is probed on the two indexes.
FIND_EVENT = (
    f"SELECT {_COLUMNS.format(payload='payload')} FROM events.events"
    " WHERE organization_id = $1 AND (id = $2 OR (status = 'rejected' AND event_id = $3))"
    " ORDER BY status = 'accepted' DESC, received_at DESC, id DESC LIMIT 1"
)
# Literals, never the caller's text: the partial index's predicate must match by sight.
_STATUS = {"accepted": "status = 'accepted'", "rejected": "status = 'rejected'"}
# The deliveries' (executions') statuses of one event: found by id where created_at is the
# event's stamp (one day's partition), then any left by id alone (an index probe a partition).
STATUSES_AT = (
    "SELECT id, status FROM {table} WHERE id = ANY($1::uuid[]) AND organization_id = $2"
    " AND created_at BETWEEN $3 AND $4"
)
STATUSES_ANY_DAY = (
    "SELECT id, status FROM {table} WHERE id = ANY($1::uuid[]) AND organization_id = $2"
)
# An event's created_at is its received_at since fanout stamps both with the Kafka record's
# timestamp; before, received_at was the batch's clock plus a microsecond an event, created_at
# the clock: a second before the stamp holds both.
STAMP_SPREAD = timedelta(seconds=1)


def page_query(
    organization_id: UUID,
    filters: EventFilters,
    *,
    limit: int,
    after: tuple[datetime, UUID] | None,
    kept: Span | None = None,
) -> tuple[str, list[object]]:
    """The statement and arguments of one page, newest first by (received_at, id); `kept`:
    the days an event can have (`kept_span`), as literals. A first page reads up to
    `planned_limit(limit)` rows: keep the first `limit`."""
    args: list[object] = [organization_id]
    where = ["organization_id = $1"]
    if kept is not None:
        where.append(within_span("received_at", kept))

    def arg(value: object) -> str:
        args.append(value)
        return f"${len(args)}"

    if filters.event is not None:
        where.append(f"event = {arg(filters.event)}")
    if filters.room_id is not None:
        where.append(f"room_id = {arg(filters.room_id)}")
    if filters.status is not None:
        where.append(_STATUS[filters.status])
    if filters.since is not None:
        where.append(f"received_at >= {arg(filters.since)}")
    if filters.until is not None:
        where.append(f"received_at < {arg(filters.until)}")
    if after is not None:
        at = arg(after[0])
        # The second condition adds nothing but lets Postgres skip the days after the cursor.
        where.append(f"(received_at, id) < ({at}, {arg(after[1])}) AND received_at <= {at}")
    # By event and room both, a page is planned for their values every time (LIMIT a
    # parameter, see planned_limit), as a page after a cursor is: which of the two indexes
    # reads fewer rows depends on the values, and a plan made without them walks one index
    # past many of the other's rows.
    both = filters.event is not None and filters.room_id is not None
    sql = (
        f"SELECT {_COLUMNS.format(payload='NULL::text')} FROM events.events"
        f" WHERE {' AND '.join(where)} ORDER BY received_at DESC, id DESC"
        f" LIMIT {arg(limit) if both or after is not None else planned_limit(limit)}"
    )
    return sql, args


class PostgresEventLog:
    """EventLog on Postgres. Given `retention_days`, a page reads only the days an event can
    have on the day `clock` says (`kept_span`); without, every day and the default
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

    async def page(
        self,
        organization_id: UUID,
        filters: EventFilters,
        *,
        limit: int,
        after: tuple[datetime, UUID] | None,
    ) -> list[EventRow]:
        days = self._retention_days
        kept = None if days is None else kept_span(self._clock().astimezone(UTC).date(), days)
        sql, args = page_query(organization_id, filters, limit=limit, after=after, kept=kept)
        return [EventRow(**dict(r)) for r in (await self._pool.fetch(sql, *args))[:limit]]

    async def find(self, organization_id: UUID, event_id: str) -> EventRow | None:
        # An accepted event's row id is UUIDv5(organization id, event id), as fanout writes it.
        row_id = uuid.uuid5(organization_id, event_id)
        record = await self._pool.fetchrow(
            FIND_EVENT,
            organization_id,
            row_id,
            event_id,
        )
        return EventRow(**dict(record)) if record else None

    async def delivery_statuses(
        self, organization_id: UUID, delivery_ids: Sequence[UUID], *, received_at: datetime
    ) -> dict[UUID, str]:
        return await self._statuses(
            "delivery.deliveries", organization_id, delivery_ids, received_at
        )

    async def execution_statuses(
        self, organization_id: UUID, execution_ids: Sequence[UUID], *, received_at: datetime
    ) -> dict[UUID, str]:
        return await self._statuses(
            "workflow.executions", organization_id, execution_ids, received_at
        )

    async def _statuses(
        self, table: str, organization_id: UUID, ids: Sequence[UUID], received_at: datetime
    ) -> dict[UUID, str]:
        records = await self._pool.fetch(
            STATUSES_AT.format(table=table),
            list(ids),
            organization_id,
            received_at - STAMP_SPREAD,
            received_at,
        )
        found = {r["id"]: r["status"] for r in records}
        missing = [i for i in ids if i not in found]
        if missing:  # not stored yet, or stamped otherwise (a rare case: see STATUSES_AT)
            records = await self._pool.fetch(
                STATUSES_ANY_DAY.format(table=table), missing, organization_id
            )
            found |= {r["id"]: r["status"] for r in records}
        return found
