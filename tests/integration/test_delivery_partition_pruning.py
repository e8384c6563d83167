"""The delivery path finds its deliveries by (id, created_at), so each statement reads one
day's partition of `deliveries` and of `delivery_attempts`, however many days are kept: under
Postgres's plan for the values and under the generic plan it caches after a few runs. The
retry claim reads the claimable index of every partition in order and merges them (no sort of every
due row); only the rows it claims are then read, each in its day. A delivery looked up by its
key is read through the primary key, even where the day's statistics count no pending one.

Days of a few thousand deliveries each (ANALYZEd), so the plans are the ones a busy table gets.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.delivery import repository
from services.delivery.recoveries import PostgresRecoveryTurn, PostgresUpkeep, Recovery
from services.delivery.retention import ATTEMPTS, DELIVERIES
from services.delivery.rows import AttemptRow, Job
from services.registry.deliveries.repository import PostgresDeliveryLog
from shared.messages import DeliveryRequested, delivery_id_for
from shared.partitions import create_partitions, day_start, partition_name
from tests.bench.scale_seed import ATTEMPT_COLUMNS, DELIVERY_COLUMNS, DeliveryShape, delivery_rows
from tests.support.plans import (
    KeptStatements,
    executed_plan,
    nodes,
    parent_indexes,
    rows_read,
    scans_run,
)

pytestmark = pytest.mark.integration

DAYS = [date(2026, 11, 20) + timedelta(days=n) for n in range(4)]
DAY = DAYS[2]  # the day the statements' deliveries were created
PER_DAY = 4_000
WEBHOOK = uuid.UUID(int=0xB0B)
ORG = uuid.UUID(int=0xACC)
PLANS = pytest.mark.parametrize("generic", [False, True], ids=["custom-plan", "generic-plan"])


def at(day: date, hours: float) -> datetime:
    return day_start(day) + timedelta(hours=hours)


@pytest.fixture
async def conn(database_url) -> asyncpg.Connection:
    """A database holding DAYS of deliveries (and attempts), each day in its partition."""
    conn = await asyncpg.connect(database_url)
    rng = random.Random(20)
    for day in DAYS:
        for table in (DELIVERIES, ATTEMPTS):
            await create_partitions(conn, table, today=day, ahead=0)
        shape = DeliveryShape(
            ORG, [WEBHOOK, uuid.uuid4()], PER_DAY, at(day, 0), timedelta(hours=23)
        )
        rows = list(delivery_rows(shape, rng))
        await conn.copy_records_to_table(
            "deliveries",
            schema_name="delivery",
            columns=DELIVERY_COLUMNS,
            records=[r for r, _ in rows],
        )
        await conn.copy_records_to_table(
            "delivery_attempts",
            schema_name="delivery",
            columns=ATTEMPT_COLUMNS,
            records=[a for _, a in rows if a is not None],
        )
    await conn.execute("ANALYZE delivery.deliveries, delivery.delivery_attempts")
    yield conn
    await conn.close()


async def stored_jobs(
    conn: asyncpg.Connection,
    count: int,
    *,
    due: datetime,
    lease_until: datetime | None = None,
    name: str = "pruned",
) -> list[Job]:
    """`count` pending deliveries of WEBHOOK created on DAY a second apart, due at `due`,
    leased until `lease_until` (by default `due`)."""
    requests = [
        DeliveryRequested(
            delivery_id=delivery_id_for(str(WEBHOOK), f"{name}-{n}"),
            webhook_id=str(WEBHOOK),
            organization_id=str(ORG),
            event_id=f"{name}-{n}",
            event="participant.joined",
            body="{}",
            created_at=at(DAY, 12 + n / 3600),
        )
        for n in range(count)
    ]
    return await repository.insert_requested(
        conn, requests, now=due, lease_until=lease_until or due
    )


def leased_statements(job: Job, later: datetime) -> dict[str, Callable[[Any], Awaitable[Any]]]:
    """The statements that find one leased delivery by its key, each run on a connection."""
    return {
        "renew_lease": lambda c: repository.renew_lease(c, job, lease_until=later),
        "release": lambda c: repository.release(c, [job], due_at=later),
        "stop": lambda c: repository.stop_deliveries(c, [job], reason="gone", now=later),
        "hold": lambda c: repository.hold_deliveries(c, [job], now=later),
    }


def day_partition(table: str, day: date = DAY) -> str:
    return partition_name(table, day)


async def partitions_read(conn, kept: KeptStatements, table: str, *, generic: bool) -> set[str]:
    [(sql, args), *_] = kept.statements
    plan = await executed_plan(conn, sql, args, generic=generic)
    return {node["Relation Name"] for node in scans_run(plan, table)}


@PLANS
async def test_a_leased_deliverys_statements_read_its_days_partition_only(conn, generic):
    [job] = await stored_jobs(conn, 1, due=at(DAY, 13))
    later = at(DAY, 14)
    row = AttemptRow(
        delivery_id=job.id,
        delivery_created_at=job.created_at,
        attempt=1,
        started_at=later,
        duration_ms=10,
        status_code=503,
        error="HTTP 503",
        response_body=None,
        status="pending",
        next_attempt_at=later,
    )
    statements = leased_statements(job, later) | {
        "record_attempts": lambda c: repository.record_attempts(c, [row], now=later),
    }
    read = {}
    for name, run in statements.items():
        kept = KeptStatements()
        await run(kept)
        read[name] = await partitions_read(conn, kept, "deliveries", generic=generic)
    assert read == {name: {day_partition("deliveries")} for name in statements}


@PLANS
async def test_a_deliverys_attempts_are_read_for_the_log_from_its_days_partition(conn, generic):
    record = await conn.fetchrow(
        "SELECT delivery_id, delivery_created_at FROM delivery.delivery_attempts"
        " WHERE delivery_created_at >= $1 AND delivery_created_at < $2 LIMIT 1",
        day_start(DAY),
        day_start(DAY + timedelta(days=1)),
    )
    kept = KeptStatements()
    await PostgresDeliveryLog(kept).attempts(record["delivery_id"], record["delivery_created_at"])
    read = await partitions_read(conn, kept, "delivery_attempts", generic=generic)
    assert read == {day_partition("delivery_attempts")}


@PLANS
async def test_the_claim_merges_every_days_due_index_in_order_and_reads_only_what_it_claims(
    conn, generic
):
    # A backlog: a quarter of every day due again an hour after it was created.
    await conn.execute(
        "UPDATE delivery.deliveries SET status = 'pending', next_attempt_at = created_at"
        " + interval '1 hour' WHERE hashtext(id::text) % 4 = 0"
    )
    await conn.execute("ANALYZE delivery.deliveries")
    kept = KeptStatements()
    now = at(DAYS[-1], 23)
    await repository.claim_due(kept, now=now, lease_until=now, limit=10, skip_webhooks=[])
    [(sql, args)] = kept.statements
    plan = await executed_plan(conn, sql, args, generic=generic)
    parents = await parent_indexes(conn, "delivery")
    by_index: dict[str, set[str]] = {}
    for scan in scans_run(plan, "deliveries"):
        index = parents.get(scan.get("Index Name", ""), scan.get("Index Name", scan["Node Type"]))
        by_index.setdefault(index, set()).add(scan["Relation Name"])
    kinds = {node["Node Type"] for node in nodes(plan)}
    # The one Sort puts the claimed rows (at most `limit`) back in their due order.
    sorts = [node for node in nodes(plan) if node["Node Type"] == "Sort"]
    assert "Merge Append" in kinds, kinds
    sorted_ = [
        [c["Node Type"] for c in s["Plans"] if c["Parent Relationship"] == "Outer"] for s in sorts
    ]
    assert sorted_ == [["CTE Scan"]], kinds
    every_partition = {
        r["relname"]
        for r in await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'delivery.deliveries'::regclass"
        )
    }
    assert by_index.pop("deliveries_claimable_idx") == every_partition
    # The ten due first were all created on the first day.
    assert by_index == {"deliveries_pkey": {day_partition("deliveries", DAYS[0])}}


@PLANS
async def test_the_claim_never_reads_the_deliveries_leased_and_in_flight(conn, generic):
    # As under load: a thousand deliveries stored leased (due at once, their lease an hour
    # off) and waiting in their lanes, and three whose retry is due.
    now = at(DAY, 13)
    await stored_jobs(conn, 1_000, due=at(DAY, 12), lease_until=at(DAY, 14), name="in-flight")
    due = await stored_jobs(conn, 3, due=at(DAY, 12))
    await repository.release(conn, due, due_at=at(DAY, 12.5))
    await conn.execute("ANALYZE delivery.deliveries")
    kept = KeptStatements()
    await repository.claim_due(kept, now=now, lease_until=now, limit=10, skip_webhooks=[])
    [(sql, args)] = kept.statements
    plan = await executed_plan(conn, sql, args, generic=generic)
    parents = await parent_indexes(conn, "delivery")
    # What the claim's index scans found (the pkey's are the claimed rows' own lookups).
    found = rows_read(
        scan
        for scan in scans_run(plan, "deliveries")
        if parents.get(scan.get("Index Name", ""), "") != "deliveries_pkey"
    )
    assert found == 3  # the three due, none of the thousand in flight


@PLANS
async def test_a_leased_delivery_is_found_by_its_key_where_statistics_say_none_pending(
    conn, generic
):
    # The day was last analyzed when none of its deliveries was pending (the fixture's), as
    # autovacuum may have last seen it; since then a thousand were stored, leased and in
    # flight. Postgres still counts no pending delivery in it.
    now = at(DAY, 13)
    await stored_jobs(conn, 1_000, due=now, lease_until=at(DAY, 14), name="in-flight")
    [job] = await stored_jobs(conn, 1, due=now)
    later = at(DAY, 14)
    statements = leased_statements(job, later)
    parents = await parent_indexes(conn, "delivery")
    read = {}
    for name, run in statements.items():
        kept = KeptStatements()
        await run(kept)
        [(sql, args)] = kept.statements
        plan = await executed_plan(conn, sql, args, generic=generic)
        scans = scans_run(plan, "deliveries")
        read[name] = (
            {parents.get(scan.get("Index Name", ""), scan["Node Type"]) for scan in scans},
            sum(scan.get("Rows Removed by Filter", 0) for scan in scans),
        )
    assert read == {name: ({"deliveries_pkey"}, 0) for name in statements}


@PLANS
async def test_held_deliveries_are_resumed_and_failed_each_in_its_days_partition(conn, generic):
    jobs = await stored_jobs(conn, 3, due=at(DAY, 13))
    await repository.hold_deliveries(conn, jobs, now=at(DAY, 13))
    for run in (
        lambda pool: PostgresUpkeep(pool).resume_held(WEBHOOK, now=at(DAY, 14), limit=10),
        lambda pool: PostgresUpkeep(pool).fail_held(
            WEBHOOK, reason="gone", now=at(DAY, 14), limit=10
        ),
    ):
        kept = KeptStatements()
        await run(kept)
        [(sql, args)] = kept.statements
        plan = await executed_plan(conn, sql, args, generic=generic)
        # The held index is read in every partition (no day is known before); each delivery
        # it finds is then looked up by (id, created_at), in its own day's partition only.
        found = {
            scan["Relation Name"]
            for scan in scans_run(plan, "deliveries")
            if "created_at = " in scan.get("Index Cond", "")
        }
        assert found == {day_partition("deliveries")}


@PLANS
async def test_a_recovery_reads_the_days_of_its_window_only(conn, generic):
    failed = await conn.fetch(
        "SELECT id, created_at, attempts FROM delivery.deliveries"
        " WHERE webhook_id = $1 AND status = 'failed' AND created_at >= $2 AND created_at < $3"
        " ORDER BY created_at LIMIT 5",
        WEBHOOK,
        at(DAY, 1),
        at(DAY, 20),
    )
    job_id = uuid.uuid4()
    recovery = Recovery(
        job_id=job_id,
        webhook_id=WEBHOOK,
        organization_id=ORG,
        since=at(DAY, 1),
        until=at(DAY, 20),
        marked=0,
        done=0,
        exhausted=False,
        after_created_at=None,
        after_id=None,
    )
    await conn.execute(
        "INSERT INTO delivery.recoveries (job_id, webhook_id, organization_id, since, until,"
        " status, marked, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, 'running', $6, $4, $4)",
        job_id,
        WEBHOOK,
        ORG,
        recovery.since,
        recovery.until,
        len(failed),
    )
    await conn.executemany(
        "INSERT INTO delivery.recovery_items (job_id, delivery_id, delivery_created_at,"
        " attempts_before) VALUES ($1, $2, $3, $4)",
        [(job_id, r["id"], r["created_at"], r["attempts"] - 1) for r in failed],
    )
    read = {}
    for name, run in {
        "settle": lambda turn: turn.settle(now=at(DAY, 21)),
        "mark": lambda turn: turn.mark(limit=50, now=at(DAY, 21)),
    }.items():
        kept = KeptStatements()
        # The items are the job's first marks: the next mark goes on after them.
        last = failed[-1]
        marked = replace(
            recovery, marked=len(failed), after_created_at=last["created_at"], after_id=last["id"]
        )
        await run(PostgresRecoveryTurn(kept, marked))
        read[name] = await partitions_read(conn, kept, "deliveries", generic=generic)
    assert len(failed) == 5
    assert read == {"settle": {day_partition("deliveries")}, "mark": {day_partition("deliveries")}}
