"""Every filter combination `GET /events` offers is served by an index (no sequential scan; in
the page's order, or, for a selective filter, a bitmap of its few rows sorted) in every day's
partition it reads, one event is found by its keys' indexes, its executions' statuses in its
own day's partition only; and what one event costs to keep.

The plans are Postgres's own choice, for the values given (as asyncpg's first executions of a
prepared statement get them) and the generic one it may cache later, on a log shaped like a
busy account's (ANALYZEd) spread over days: some with a partition of their own, the oldest in
the default partition, as after the migration that partitioned the log; a page names the days
the registry keeps (`kept_span`, KEPT), as it does in use.
`ROOMHOOKS_EVENT_LOG_SIZE_EVENTS` sets how many events the storage figure is measured on
(default 20,000; the figure in the docs was measured on 100,000).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.delivery.retention import DELIVERIES
from services.fanout.event_log import LoggedEvent, logged_id
from services.fanout.repository import PostgresEventLog
from services.fanout.retention import PLAN as EVENTS_PLAN
from services.registry.events.models import EventFilters
from services.registry.events.repository import (
    FIND_EVENT,
    STAMP_SPREAD,
    STATUSES_AT,
    page_query,
)
from services.workflow_runner.retention import PLAN as WORKFLOW_PLAN
from shared.events import Scope, build_event, event_names, parse_event, render_payload
from shared.partitions import create_partitions, kept_span

pytestmark = pytest.mark.integration

T0 = datetime(2026, 5, 1, tzinfo=UTC)
DAYS = 4  # T0's day in the default partition, the next three in partitions of their own
# The days a page names: the registry's clock at the end of the log's days, keeping them all.
KEPT = kept_span((T0 + timedelta(days=DAYS)).date(), DAYS)
ROOM_EVENTS = event_names(Scope.ROOM)
ROOMS = 10  # a busy account: each room and each event name holds thousands of events
MAX_SORTED_ROWS = 1_000
OTHER_ACCOUNTS = 20  # each partition holds many accounts' rows, as in production
SIZE_EVENTS = int(os.environ.get("ROOMHOOKS_EVENT_LOG_SIZE_EVENTS", "20000"))


def representative(org: uuid.UUID, n: int, count: int, rng: random.Random) -> LoggedEvent:
    """The `n`th of `count` events spread evenly over DAYS days, a `participant.joined` as
    fanout logs it: the body webhooks get, one webhook reached, a workflow now and then, one
    event in a hundred refused."""
    room = {"id": f"room-{rng.randrange(ROOMS)}", "name": "Design review"}
    user = {"id": f"user-{rng.randrange(10_000)}", "name": "Ada Lovelace", "token": "tok"}
    at = T0 + timedelta(days=DAYS) * n / count
    raw = build_event(
        event="participant.joined", organization_id=str(org), room=room, user=user, now=at
    )
    body = render_payload(parse_event(raw)).decode()
    refused = n % 100 == 99
    return LoggedEvent(
        id=uuid.uuid4() if refused else logged_id(org, raw["id"]),
        organization_id=org,
        event_id=raw["id"],
        event=rng.choice(ROOM_EVENTS),
        room_id=room["id"],
        status="rejected" if refused else "accepted",
        reason="room.id: field required" if refused else None,
        payload=None if refused else body,
        webhook_ids=() if refused else (uuid.uuid4(),),
        workflow_ids=(uuid.uuid4(),) if n % 4 == 0 and not refused else (),
        received_at=at,
    )


async def partitioned(pool) -> None:
    """The days after T0's with a partition each (T0's rows land in the default one)."""
    async with pool.acquire() as conn:
        for table in (*EVENTS_PLAN.partitioned, DELIVERIES, *WORKFLOW_PLAN.partitioned):
            await create_partitions(conn, table, today=T0.date() + timedelta(days=1), ahead=DAYS)


async def fill(pool, org: uuid.UUID, count: int, *, batch: int = 500, analyze: bool = True) -> None:
    rng = random.Random(16)
    writer = PostgresEventLog(pool)
    for start in range(0, count, batch):
        rows = [representative(org, n, count, rng) for n in range(start, min(count, start + batch))]
        await writer.record(rows)
    if analyze:
        await pool.execute("ANALYZE events.events")


FILTERS = {
    "event": {"event": "participant.joined"},
    "room": {"room_id": "room-7"},
    "status": {"status": "rejected"},
    "accepted": {"status": "accepted"},
    "since": {"since": T0 + timedelta(days=DAYS) / 4},
    "until": {"until": T0 + timedelta(days=DAYS) * 3 / 4},
}


def combinations() -> list[tuple[str, ...]]:
    names = [n for n in FILTERS if n != "accepted"]
    found = [c for r in range(len(names) + 1) for c in itertools.combinations(names, r)]
    return [*found, ("accepted",), ("accepted", "event"), ("accepted", "room")]


@pytest.mark.parametrize("generic", [False, True], ids=["custom-plan", "generic-plan"])
@pytest.mark.parametrize("cursor", [False, True], ids=["first-page", "next-page"])
async def test_every_filter_combination_is_read_from_an_index_in_page_order(pool, cursor, generic):
    busy, small = uuid.uuid4(), uuid.uuid4()
    await partitioned(pool)
    others = [(uuid.uuid4(), 250) for _ in range(OTHER_ACCOUNTS)]
    for org, count in [(busy, 20_000), (small, 250), *others]:
        await fill(pool, org, count, analyze=False)
    await pool.execute("ANALYZE events.events")
    after = (T0 + timedelta(days=DAYS) * 0.6, uuid.uuid4()) if cursor else None
    parents = await parent_indexes(pool)
    filled = await partitions_holding_rows(pool, "events.events")
    problems, used = [], {}
    for (account, org), combination in itertools.product(
        {"busy": busy, "small": small}.items(), combinations()
    ):
        fields = {k: v for name in combination for k, v in FILTERS[name].items()}
        sql, args = page_query(org, EventFilters(**fields), limit=51, after=after, kept=KEPT)
        nodes = await plan_nodes(pool, sql, *args, generic=generic, analyze=True)
        kinds = {n["Node Type"] for n in nodes if n.get("Relation Name") in filled}
        indexes = {parents.get(n.get("Index Name")) for n in nodes} - {None}
        used[f"{account}:{'+'.join(combination) or 'none'}"] = sorted(indexes)
        # A sort is the planner's choice only where the filter is selective: it then reads the
        # few matching rows through the index's bitmap and sorts them.
        sorted_rows = max((n["Plan Rows"] for n in nodes if n["Node Type"] == "Sort"), default=0)
        # Rows read and thrown away: an index walked in time order past other accounts' rows
        # (the default partition's time index is retention's, not the pages').
        discarded = sum(n.get("Rows Removed by Filter", 0) for n in nodes)
        if "Seq Scan" in kinds or not indexes or max(sorted_rows, discarded) > MAX_SORTED_ROWS:
            problems.append(
                f"{account} {combination}: {sorted(kinds)} {sorted(indexes)}"
                f" sorted {sorted_rows} discarded {discarded}"
            )
    print(json.dumps(used, indent=1))
    assert problems == [], "\n".join(problems)
    # The default partition's rows may be read in time order where nearly all are the busy
    # account's (nothing is discarded: see above); every day's partition uses the page's index.
    pages = {name: set(found) - {"events_default_received_at_idx"} for name, found in used.items()}
    assert pages["busy:none"] == pages["small:none"] == {"events_log_idx"}
    assert pages["busy:event"] == pages["small:event"] == {"events_by_event_idx"}
    assert pages["busy:room"] == pages["small:room"] == {"events_by_room_idx"}
    # The rejected events are few even for the busy account: either partial index of them
    # reads them all, and the bounded sort above is then the planner's fair choice (ANALYZE's
    # sample decided which one, run to run).
    assert pages["busy:status"] in ({"events_rejected_idx"}, {"events_rejected_by_id_idx"})


async def plan_nodes(
    pool, sql: str, *args: object, generic: bool = False, analyze: bool = False
) -> list[dict]:
    """Every node of the plan Postgres picks for `sql` with these values; `generic`: of the
    plan it caches once a prepared statement has run a few times, made without them (EXPLAIN
    with values always plans for them: PREPARE, EXECUTE); `analyze`: run, with the rows each
    node read."""
    explain = "EXPLAIN (ANALYZE, FORMAT JSON)" if analyze else "EXPLAIN (FORMAT JSON)"
    async with pool.acquire() as conn:
        if not generic:
            plan = await conn.fetchval(f"{explain} {sql}", *args)
        else:
            await conn.execute("SET plan_cache_mode = force_generic_plan")
            await conn.execute(f"PREPARE statement AS {sql}")
            try:
                values = ", ".join(_literal(a) for a in args)
                plan = await conn.fetchval(f"{explain} EXECUTE statement({values})")
            finally:
                await conn.execute("DEALLOCATE statement")
                await conn.execute("RESET plan_cache_mode")
    doc = json.loads(plan) if isinstance(plan, str) else plan
    return list(_nodes(doc[0]["Plan"]))


def _literal(value: object) -> str:
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "ARRAY[" + ", ".join(_literal(v) for v in value) + "]::uuid[]"
    return "'" + str(value).replace("'", "''") + "'"


async def partitions_holding_rows(pool, table: str) -> set[str]:
    """The partitions of `table` that hold rows: the days made ahead are empty, and a scan of
    an empty table costs nothing, whatever kind it is."""
    rows = await pool.fetch(f"SELECT DISTINCT tableoid::regclass::text AS name FROM {table}")
    return {r["name"].split(".")[-1] for r in rows}


async def parent_indexes(pool) -> dict[str, str]:
    """Each index of the event log and the executions -> the index it was made from on the
    parent table (itself for the parent's, and for an index of one partition only)."""
    rows = await pool.fetch(
        "SELECT c.relname AS name, coalesce(p.relname, c.relname) AS parent"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " LEFT JOIN pg_inherits i ON i.inhrelid = c.oid"
        " LEFT JOIN pg_class p ON p.oid = i.inhparent"
        " WHERE c.relkind IN ('i', 'I') AND n.nspname IN ('events', 'workflow')"
    )
    return {r["name"]: r["parent"] for r in rows}


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


@pytest.mark.parametrize("generic", [False, True], ids=["custom-plan", "generic-plan"])
async def test_one_event_is_found_by_primary_key_or_its_refused_id(pool, generic):
    org = uuid.uuid4()
    await partitioned(pool)
    await fill(pool, org, 5_000)
    parents = await parent_indexes(pool)
    args = (org, logged_id(org, "evt"), "evt")
    nodes = await plan_nodes(pool, FIND_EVENT, *args, generic=generic)
    filled = await partitions_holding_rows(pool, "events.events")
    assert "Seq Scan" not in {n["Node Type"] for n in nodes if n.get("Relation Name") in filled}
    indexes = {parents[n["Index Name"]] for n in nodes if "Index Name" in n}
    assert indexes == {"events_pkey", "events_rejected_by_id_idx"}


@pytest.mark.parametrize("generic", [False, True], ids=["custom-plan", "generic-plan"])
@pytest.mark.parametrize("hour", [12, 0], ids=["midday", "just-after-midnight"])
@pytest.mark.parametrize("table", ["delivery.deliveries", "workflow.executions"])
async def test_an_events_deliveries_and_executions_are_looked_for_in_its_own_day_only(
    pool, generic, hour, table
):
    await partitioned(pool)
    received_at = T0 + timedelta(days=2, hours=hour, milliseconds=500)
    ids = [uuid.uuid4(), uuid.uuid4()]
    args = (ids, uuid.uuid4(), received_at - STAMP_SPREAD, received_at)
    nodes = await plan_nodes(pool, STATUSES_AT.format(table=table), *args, generic=generic)
    scanned = {n["Relation Name"] for n in nodes if "Relation Name" in n}
    days = {(received_at - STAMP_SPREAD).date(), received_at.date()}  # two just after midnight
    name = table.split(".")[1]
    assert scanned == {f"{name}_p{day:%Y%m%d}" for day in days}
    assert "Seq Scan" not in {n["Node Type"] for n in nodes}


async def test_what_one_event_costs_to_keep(pool):
    org = uuid.uuid4()
    async with pool.acquire() as conn:  # every day's rows in its own partition, as in use
        for table in EVENTS_PLAN.partitioned:
            await create_partitions(conn, table, today=T0.date(), ahead=DAYS)
    await fill(pool, org, SIZE_EVENTS)
    await pool.execute("VACUUM ANALYZE events.events")
    # A partitioned table holds nothing itself: its size is its partitions'.
    table, heap = await pool.fetchrow(
        "SELECT sum(pg_total_relation_size(relid))::bigint, sum(pg_table_size(relid))::bigint"
        " FROM pg_partition_tree('events.events')"
    )
    per_event = table / SIZE_EVENTS
    print(
        f"\nevent log: {SIZE_EVENTS:,} events, {table:,} bytes in all ({heap:,} table,"
        f" {table - heap:,} indexes): {per_event:,.0f} bytes/event,"
        f" {per_event * 1e6 / 2**30:,.2f} GiB per million events"
    )
    assert 330 < per_event < 2_000  # a body of ~330 bytes, kept once; the rest: ids, indexes
