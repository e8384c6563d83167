"""The delivery log's page (`GET .../webhooks/{id}/deliveries`, the registry's own statement)
is read from an index for every status filter, first page and next: `status=failed` and
`status=pending` from the partial indexes of those, so it never walks the webhook's whole log
to find them.

The plans are Postgres's own choice, for the values given (as asyncpg's first executions of a
prepared statement get them) and the generic one it may cache later, on a table shaped like a
busy account's log (ANALYZEd), ten days of it, each in its day's partition, with the days the
registry names (`kept_span`) all partitioned: each partition is read on its own index, newest
day first, never the default partition. An index is named by the partitioned table's index it
was made from.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.delivery.retention import DELIVERIES
from services.registry.deliveries.repository import PostgresDeliveryLog
from shared.partitions import create_partitions
from tests.bench.scale_seed import DELIVERY_COLUMNS, DeliveryShape, delivery_rows
from tests.support.plans import nodes, parent_indexes, rows_read

pytestmark = pytest.mark.integration

T0 = datetime(2026, 5, 1, tzinfo=UTC)
DAYS = 10
TODAY = T0 + timedelta(days=DAYS)  # the registry's clock: it keeps DAYS days, from T0's
MAX_READ_ROWS = 1_000
OTHER_ACCOUNTS = 20  # each partition holds many accounts' rows, as in production
EXPLAIN = "EXPLAIN (ANALYZE, FORMAT JSON)"  # with the rows each node read


class ExplainingPool:
    """Stands in for the pool: plans and runs each statement the log would run, answers no
    rows; `generic` asks for the plan Postgres caches once a prepared statement has run a few
    times, made without the values."""

    def __init__(self, pool, *, generic: bool) -> None:
        self._pool = pool
        self._generic = generic
        self.plans: list[dict] = []

    async def fetch(self, sql: str, *args: object) -> list:
        async with self._pool.acquire() as conn:
            if self._generic:  # EXPLAIN with values always plans for them: PREPARE, EXECUTE
                await conn.execute("SET plan_cache_mode = force_generic_plan")
                await conn.execute(f"PREPARE page AS {sql}")
                try:
                    values = ", ".join(_literal(a) for a in args)
                    plan = await conn.fetchval(f"{EXPLAIN} EXECUTE page({values})")
                finally:
                    await conn.execute("DEALLOCATE page")
                    await conn.execute("RESET plan_cache_mode")
            else:
                plan = await conn.fetchval(f"{EXPLAIN} {sql}", *args)
        self.plans.append((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"])
        return []


def _literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def relations(plan: list[dict]) -> set[str]:
    return {n["Relation Name"] for n in plan if "Relation Name" in n}


async def fill(pool, org: uuid.UUID, webhooks: list[uuid.UUID], count: int) -> None:
    shape = DeliveryShape(org, webhooks, count, T0, timedelta(days=DAYS))
    rows = [row for row, _attempt in delivery_rows(shape, random.Random(org.int))]
    async with pool.acquire() as conn:
        await conn.copy_records_to_table(
            "deliveries", schema_name="delivery", columns=DELIVERY_COLUMNS, records=rows
        )


@pytest.mark.parametrize("generic", [False, True], ids=["custom-plan", "generic-plan"])
@pytest.mark.parametrize("cursor", [False, True], ids=["first-page", "next-page"])
async def test_every_status_filter_is_read_from_an_index_in_page_order(pool, cursor, generic):
    org = uuid.uuid4()
    webhooks = [uuid.uuid4() for _ in range(4)]
    async with pool.acquire() as conn:
        await create_partitions(conn, DELIVERIES, today=T0.date(), ahead=DAYS + 1)
    await fill(pool, org, webhooks, 8_000)
    for _ in range(OTHER_ACCOUNTS):
        await fill(pool, uuid.uuid4(), [uuid.uuid4() for _ in range(2)], 400)
    await pool.execute("ANALYZE delivery.deliveries")
    async with pool.acquire() as conn:
        parents = await parent_indexes(conn, "delivery")
        # A partition known to be empty costs nothing to scan, and is scanned so.
        empty = {
            r["relname"]
            for r in await conn.fetch(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'delivery.deliveries'::regclass AND c.reltuples = 0"
            )
        }
    explaining = ExplainingPool(pool, generic=generic)
    log = PostgresDeliveryLog(explaining, retention_days=DAYS, clock=lambda: TODAY)
    after = (T0 + timedelta(days=5), uuid.uuid4()) if cursor else None
    used, problems = {}, []
    for status in (None, "failed", "success", "pending"):
        await log.page(org, webhooks[0], status=status, limit=51, after=after)
        found = list(nodes(explaining.plans[-1]))
        kinds = {n["Node Type"] for n in found}
        indexes = {
            parents.get(n["Index Name"], n["Index Name"]) for n in found if "Index Name" in n
        }
        used[status or "none"] = sorted(indexes)
        read = rows_read(n for n in found if "Relation Name" in n)
        scanned = {n["Relation Name"] for n in found if n["Node Type"] == "Seq Scan"} - empty
        merged = "Merge Append" in kinds or "deliveries_default" in relations(found)
        if scanned or merged or not indexes or read > MAX_READ_ROWS:
            problems.append(f"{status}: {sorted(kinds)} {sorted(indexes)} read {read}")
    print(json.dumps(used, indent=1))
    assert problems == [], "\n".join(problems)
    assert used["none"] == ["deliveries_log_idx"]
    assert used["failed"] == ["deliveries_failed_idx"]
    assert used["pending"] == ["deliveries_pending_idx"]  # none pending: no walk of the log
