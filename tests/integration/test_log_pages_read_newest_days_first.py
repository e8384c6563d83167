"""A page of the delivery, event and execution logs names the days a row can have
(`kept_span`) as literals: when each of those days has a partition of its own, planning leaves
the default partition out, and the page is an ordered Append read from the newest day that
stops at the day that fills it (older days "never executed"), for the values and under the
generic plan alike. A day without a partition keeps its rows in the default partition: the
page then merges it in (slower) and still returns every row in order.

The registry's own statements, taken from its repositories, run under EXPLAIN ANALYZE on a log
spread over every kept day, beside another account's.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from services.delivery.retention import DELIVERIES
from services.fanout.retention import PLAN as EVENTS_PLAN
from services.registry.deliveries.repository import PostgresDeliveryLog
from services.registry.events.models import EventFilters
from services.registry.events.repository import PostgresEventLog
from services.registry.workflows.repository import PostgresWorkflows
from services.workflow_runner.retention import PLAN as WORKFLOW_PLAN
from shared.partitions import (
    DAYS_AHEAD,
    PartitionedTable,
    create_partitions,
    drop_partitions,
    kept_span,
    partition_day,
    planned_limit,
    retention_cutoff,
)
from tests.bench.scale_seed import (
    DELIVERY_COLUMNS,
    EVENT_COLUMNS,
    DeliveryShape,
    delivery_rows,
    event_rows,
)
from tests.support.plans import KeptStatements, executed_plan, nodes

pytestmark = pytest.mark.integration

NOW = datetime(2026, 5, 20, 12, 0, tzinfo=UTC)
RETENTION_DAYS = 14
KEPT = kept_span(NOW.date(), RETENTION_DAYS)
PER_DAY = 400  # the account's rows a day: a page of the rare status fits in two
LIMIT = 51
RUNS = 10
MAX_SORTED_ROWS = 1_000  # as the index tests allow a selective filter
GAP = NOW.date() - timedelta(days=2)  # the day left without a partition
EXECUTION_COLUMNS = (
    "id", "workflow_id", "organization_id", "version", "event_id", "event", "status",
    "started_at", "duration_ms", "created_at", "updated_at",
)  # fmt: skip


@dataclass(frozen=True)
class Log:
    """One log: its table, how a test fills it, and the registry's page of it."""

    table: PartitionedTable
    rare_status: str
    fill: Callable[[asyncpg.Connection, uuid.UUID, uuid.UUID, datetime, int], Awaitable[None]]
    page: Callable[..., Awaitable[list[tuple[datetime, uuid.UUID]]]]


async def fill_deliveries(conn, org, owner, first_at, count) -> None:
    shape = DeliveryShape(org, [owner], count, first_at, NOW - first_at, failed_fraction=0.1)
    rows = [row for row, _attempt in delivery_rows(shape, random.Random(owner.int))]
    await conn.copy_records_to_table(
        "deliveries", schema_name="delivery", columns=DELIVERY_COLUMNS, records=rows
    )


async def fill_events(conn, org, _owner, first_at, count) -> None:
    rows = event_rows(
        org,
        [uuid.uuid4()],
        count=count,
        first_at=first_at,
        span=NOW - first_at,
        rng=random.Random(org.int),
        rejected_fraction=0.1,
    )
    await conn.copy_records_to_table(
        "events", schema_name="events", columns=EVENT_COLUMNS, records=list(rows)
    )


async def fill_executions(conn, org, owner, first_at, count) -> None:
    rng, step = random.Random(owner.int), (NOW - first_at) / count
    rows = []
    for n in range(count):
        at = first_at + step * n
        status = "error" if rng.random() < 0.1 else "success"
        rows.append(
            (uuid.uuid4(), owner, org, 1, f"evt-{n}", "participant.joined", status, at, 3, at, at)
        )
    await conn.copy_records_to_table(
        "executions", schema_name="workflow", columns=EXECUTION_COLUMNS, records=rows
    )


class Acquiring:
    """A pool whose every connection is `conn`."""

    def __init__(self, conn) -> None:
        self._conn = conn

    async def fetch(self, sql: str, *args: object) -> list:
        return await self._conn.fetch(sql, *args)

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator:
        yield self._conn


def _registry_clock() -> datetime:
    return NOW


DAYS = {"retention_days": RETENTION_DAYS, "clock": _registry_clock}


async def delivery_page(pool, org, owner, *, status, limit, after):
    log = PostgresDeliveryLog(pool, **DAYS)
    rows = await log.page(org, owner, status=status, limit=limit, after=after)
    return [(r.created_at, r.id) for r in rows]


async def event_page(pool, org, _owner, *, status, limit, after):
    log = PostgresEventLog(pool, **DAYS)
    rows = await log.page(org, EventFilters(status=status), limit=limit, after=after)
    return [(r.received_at, r.id) for r in rows]


async def execution_page(pool, org, owner, *, status, limit, after):
    log = PostgresWorkflows(Acquiring(pool), **DAYS)
    rows = await log.executions(org, owner, status=status, limit=limit, after=after)
    return [(r.created_at, r.id) for r in rows]


LOGS = {
    "deliveries": Log(DELIVERIES, "failed", fill_deliveries, delivery_page),
    "events": Log(EVENTS_PLAN.partitioned[0], "rejected", fill_events, event_page),
    "executions": Log(WORKFLOW_PLAN.partitioned[0], "error", fill_executions, execution_page),
}


def span_days() -> list[date]:
    start, end = KEPT
    return [start.date() + timedelta(days=n) for n in range((end - start).days)]


async def partition_days(pool, table: PartitionedTable, days: list[date]) -> None:
    async with pool.acquire() as conn:
        for day in days:
            await create_partitions(conn, table, today=day, ahead=0)


async def partitioned_as_retention_leaves_them(pool, table: PartitionedTable) -> None:
    """The partitions of a service that has run for longer than it keeps, after NOW's
    retention run: the days made ahead, and the past days younger than the cutoff."""
    await partition_days(pool, table, [KEPT[0].date() - timedelta(days=n) for n in (3, 2, 1)])
    await partition_days(pool, table, span_days())
    async with pool.acquire() as conn:
        await create_partitions(conn, table, today=NOW.date(), ahead=DAYS_AHEAD)
        dropped = await drop_partitions(
            conn, table, cutoff=retention_cutoff(NOW, retention_days=RETENTION_DAYS)
        )
    assert len(dropped) == 3


async def filled(pool, log: Log) -> tuple[uuid.UUID, uuid.UUID]:
    """The account's rows over every kept day up to NOW, another account's beside them."""
    org, owner = uuid.uuid4(), uuid.uuid4()
    days = (NOW - KEPT[0]) / timedelta(days=1)
    async with pool.acquire() as conn:
        await log.fill(conn, org, owner, KEPT[0], int(PER_DAY * days))
        await log.fill(conn, uuid.uuid4(), uuid.uuid4(), KEPT[0], int(PER_DAY * days))
        await conn.execute(f"ANALYZE {log.table.schema}.{log.table.table}")
    return org, owner


async def plan_of_page(
    pool, log: Log, org, owner, *, status, after, generic: bool, limit: int = LIMIT
) -> dict:
    kept = KeptStatements()
    await log.page(kept, org, owner, status=status, limit=limit, after=after)
    [(sql, args)] = kept.statements
    async with pool.acquire() as conn:
        return await executed_plan(conn, sql, args, generic=generic)


def scanned_days(plan: dict, table: str) -> dict[date | None, int]:
    """Each partition in the plan -> how many times its scan ran (0: never executed); None
    stands for the default partition."""
    found: dict[date | None, int] = {}
    for node in nodes(plan):
        name = str(node.get("Relation Name", ""))
        if "Scan" in node["Node Type"] and name.startswith(f"{table}_"):
            day = None if name == f"{table}_default" else partition_day(table, name)
            found[day] = found.get(day, 0) + node.get("Actual Loops", 0)
    return found


@pytest.mark.parametrize("generic", [False, True], ids=["custom-plan", "generic-plan"])
@pytest.mark.parametrize("cursor", [False, True], ids=["first-page", "next-page"])
@pytest.mark.parametrize("filtered", [False, True], ids=["any-status", "rare-status"])
@pytest.mark.parametrize("name", list(LOGS))
async def test_with_the_days_retention_keeps_a_page_reads_the_newest_days_until_it_is_full(
    pool, name, filtered, cursor, generic
):
    log = LOGS[name]
    await partitioned_as_retention_leaves_them(pool, log.table)
    org, owner = await filled(pool, log)
    status = log.rare_status if filtered else None
    after = (NOW - timedelta(days=3, hours=5), uuid.uuid4()) if cursor else None
    read = planned_limit(LIMIT)  # as many rows as a first page reads, a next page too
    page = await log.page(pool, org, owner, status=status, limit=read, after=after)
    assert len(page) == read  # the test's premise: the page is full
    last_day = page[-1][0].astimezone(UTC).date()

    plan = await plan_of_page(
        pool, log, org, owner, status=status, after=after, generic=generic, limit=read
    )
    kinds = {node["Node Type"] for node in nodes(plan)}
    days = scanned_days(plan, log.table.table)
    assert "Merge Append" not in kinds and "Append" in kinds
    assert None not in days, "the default partition is in the plan"
    # Planned: the kept days (those after a cursor may be pruned too), down to the oldest.
    assert set(days) <= set(span_days()) and min(days) == KEPT[0].date()
    sorted_rows = max((n["Plan Rows"] for n in nodes(plan) if n["Node Type"] == "Sort"), default=0)
    if sorted_rows:  # a selective filter's few rows, read from every day and sorted
        assert sorted_rows <= MAX_SORTED_ROWS
        return
    assert days[last_day] == 1
    older = [day for day in days if day < last_day]
    assert older, "no day older than the page's last: nothing shows the Append stopping"
    assert all(days[day] == 0 for day in older), f"older days ran: {days}"


@pytest.mark.parametrize("name", list(LOGS))
async def test_a_pages_statement_runs_from_its_cached_plan_rather_than_planned_each_time(
    pool, name
):
    log = LOGS[name]
    await partitioned_as_retention_leaves_them(pool, log.table)
    org, owner = await filled(pool, log)
    async with pool.acquire() as conn:
        one = Acquiring(conn)  # one connection: asyncpg prepares the statement once
        for _ in range(RUNS):
            page = await log.page(one, org, owner, status=None, limit=LIMIT, after=None)
            assert len(page) == LIMIT
        [plans] = await conn.fetch(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
            " WHERE statement LIKE '%FROM ' || $1 || ' %'",
            f"{log.table.schema}.{log.table.table}",
        )
    # Postgres plans the first five runs for their values, then compares the generic plan's
    # cost with theirs: a LIMIT parameter, costed as a tenth of the rows, loses every time.
    assert plans["custom_plans"] + plans["generic_plans"] == RUNS
    assert plans["generic_plans"] >= RUNS - 5


@pytest.mark.parametrize("generic", [False, True], ids=["custom-plan", "generic-plan"])
@pytest.mark.parametrize("name", list(LOGS))
async def test_a_day_without_a_partition_is_read_from_the_default_partition_in_order(
    pool, name, generic
):
    log = LOGS[name]
    await partition_days(pool, log.table, [day for day in span_days() if day != GAP])
    org, owner = await filled(pool, log)
    async with pool.acquire() as conn:  # one older than retention keeps, not yet removed
        await log.fill(conn, org, owner, KEPT[0] - timedelta(hours=1), 1)
    table = f"{log.table.schema}.{log.table.table}"
    column, owner_column = log.table.column, {"events": "organization_id"}.get(name)
    owner_column = owner_column or ("workflow_id" if name == "executions" else "webhook_id")
    expected = [
        (r[column], r["id"])
        for r in await pool.fetch(
            f"SELECT {column}, id FROM {table} WHERE {owner_column} = $1"
            f" AND {column} >= $2 ORDER BY {column} DESC, id DESC",
            org if name == "events" else owner,
            KEPT[0],
        )
    ]
    in_default = await pool.fetchval(
        f"SELECT count(*) FROM {table}_default WHERE {column} >= $1", KEPT[0]
    )
    assert in_default >= PER_DAY / 2  # the gap day's rows

    pages, after = [], None
    while True:
        page = await log.page(pool, org, owner, status=None, limit=LIMIT, after=after)
        pages += page
        if len(page) < LIMIT:
            break
        after = page[-1]
    assert pages == expected
    assert any(at.astimezone(UTC).date() == GAP for at, _ in pages)

    plan = await plan_of_page(pool, log, org, owner, status=None, after=None, generic=generic)
    assert None in scanned_days(plan, log.table.table)  # merged in: read, as it may hold rows
