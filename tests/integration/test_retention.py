"""Day partitions and the retention job against a real Postgres, on a table of their own."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from shared.partitions import (
    DAYS_AHEAD,
    ExpiringTable,
    PartitionedTable,
    add_dependency_statistics,
    create_partitions,
    day_start,
    delete_expired,
    drop_partitions,
    existing_days,
)
from shared.retention import RetentionPlan, retention_main, run_retention
from shared.settings import PostgresSettings

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 5, 17, 0, tzinfo=UTC)
TODAY = NOW.date()
LOG = PartitionedTable("ret", "log", "at")
NOTES = ExpiringTable("ret", "notes", "at", keep_if="pinned")
PLAN = RetentionPlan("ret", partitioned=(LOG,), expiring=(NOTES,))
# The same log, read by hook and account together: an account's id follows from its hook's.
PAGES = PartitionedTable("ret", "log", "at", dependent=("hook", "account"))


@pytest.fixture
async def conn(database_url):
    conn = await asyncpg.connect(database_url)
    await conn.execute(
        """
        CREATE SCHEMA ret;
        CREATE TABLE ret.log (id bigint NOT NULL, at timestamptz NOT NULL, hook int,
                              account int, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
        CREATE TABLE ret.log_default PARTITION OF ret.log DEFAULT;
        CREATE INDEX ON ret.log_default (at);
        CREATE TABLE ret.notes (id bigserial PRIMARY KEY, at timestamptz NOT NULL,
                                pinned boolean NOT NULL DEFAULT false);
        CREATE INDEX ON ret.notes (at);
        """
    )
    yield conn
    await conn.close()


async def _insert(conn, table: str, *stamps: datetime) -> None:
    await conn.executemany(
        f"INSERT INTO ret.{table} (id, at) VALUES ($1, $2)", list(enumerate(stamps))
    )


async def _where(conn, at: datetime) -> str:
    return await conn.fetchval(
        "SELECT tableoid::regclass::text FROM ret.log WHERE at = $1 LIMIT 1", at
    )


async def test_rows_land_in_their_days_partition_once_it_is_made(conn):
    made = await create_partitions(conn, LOG, today=TODAY)
    assert made == [f"log_p{TODAY + timedelta(days=n):%Y%m%d}" for n in range(DAYS_AHEAD + 1)]
    assert await create_partitions(conn, LOG, today=TODAY) == []  # made once
    await _insert(conn, "log", NOW, NOW + timedelta(days=3), NOW + timedelta(days=30))
    assert await _where(conn, NOW) == f"ret.log_p{TODAY:%Y%m%d}"
    assert await _where(conn, NOW + timedelta(days=3)) == f"ret.log_p{TODAY + timedelta(3):%Y%m%d}"
    # Beyond the days made ahead: the default partition takes it rather than refuse it.
    assert await _where(conn, NOW + timedelta(days=30)) == "ret.log_default"


async def test_a_day_already_in_the_default_partition_gets_no_partition(conn):
    await _insert(conn, "log", NOW + timedelta(days=1))
    made = await create_partitions(conn, LOG, today=TODAY, ahead=2)
    assert made == [f"log_p{TODAY:%Y%m%d}", f"log_p{TODAY + timedelta(2):%Y%m%d}"]
    assert await _where(conn, NOW + timedelta(days=1)) == "ret.log_default"


async def test_every_partition_gets_its_dependent_columns_statistics_once_built(conn, database_url):
    # A day made before the log named its dependent columns, already holding rows.
    await conn.execute(
        f"CREATE TABLE ret.log_p{TODAY:%Y%m%d} PARTITION OF ret.log"
        f" FOR VALUES FROM ('{day_start(TODAY).isoformat()}')"
        f" TO ('{day_start(TODAY + timedelta(days=1)).isoformat()}')"
    )
    await conn.executemany(
        "INSERT INTO ret.log (id, at, hook, account) VALUES ($1, $2, $3, $4)",
        [(n, NOW, n % 50, n % 50 // 5) for n in range(1_000)],
    )
    other = await asyncpg.connect(database_url)
    try:  # two replicas starting at the same moment
        made = await asyncio.gather(
            create_partitions(conn, PAGES, today=TODAY, ahead=1),
            create_partitions(other, PAGES, today=TODAY, ahead=1),
        )
    finally:
        await other.close()
    tomorrow = f"log_p{TODAY + timedelta(days=1):%Y%m%d}"
    assert set(made[0] + made[1]) == {tomorrow}
    given = await conn.fetch(
        "SELECT c.relname FROM pg_statistic_ext s JOIN pg_class c ON c.oid = s.stxrelid"
        " WHERE s.stxnamespace = 'ret'::regnamespace"
    )
    assert sorted(r["relname"] for r in given) == ["log_default", f"log_p{TODAY:%Y%m%d}", tomorrow]
    built = await conn.fetch(  # ANALYZEd at once where it held rows: today's only
        "SELECT tablename FROM pg_stats_ext WHERE schemaname = 'ret' AND dependencies IS NOT NULL"
    )
    assert [r["tablename"] for r in built] == [f"log_p{TODAY:%Y%m%d}"]
    assert await add_dependency_statistics(conn, PAGES) == []  # given once
    assert await add_dependency_statistics(conn, LOG) == []  # a log without dependent columns


async def test_whole_days_older_than_the_cutoff_are_dropped_and_the_rest_kept(conn):
    first = TODAY - timedelta(days=40)
    await create_partitions(conn, LOG, today=first, ahead=45)
    stamps = [day_start(first + timedelta(days=n)) + timedelta(hours=12) for n in range(41)]
    await _insert(conn, "log", *stamps)
    cutoff = NOW - timedelta(days=30)
    dropped = await drop_partitions(conn, LOG, cutoff=cutoff)
    assert dropped == [f"log_p{first + timedelta(days=n):%Y%m%d}" for n in range(10)]
    kept = await conn.fetchval("SELECT min(at) FROM ret.log")
    assert kept.date() == cutoff.date()  # the cutoff's own day stays until it has all passed
    assert min(await existing_days(conn, LOG)) == cutoff.date()
    assert await drop_partitions(conn, LOG, cutoff=cutoff) == []


async def test_expired_rows_leave_in_batches_and_rows_kept_in_use_stay(conn):
    old, new = NOW - timedelta(days=31), NOW - timedelta(days=1)
    await conn.executemany(
        "INSERT INTO ret.notes (at, pinned) VALUES ($1, $2)",
        [(old, False)] * 23 + [(old, True)] * 2 + [(new, False)] * 5,
    )
    deleted = await delete_expired(
        conn, "ret", "notes", "at", cutoff=NOW - timedelta(days=30), keep_if="pinned", batch=10
    )
    assert deleted == 23
    left = await conn.fetch("SELECT at, pinned FROM ret.notes")
    assert (
        sorted((r["at"] == old, r["pinned"]) for r in left)
        == [(False, False)] * 5 + [(True, True)] * 2
    )


async def test_a_retention_run_drops_days_and_empties_the_default_of_old_rows(conn):
    await create_partitions(conn, LOG, today=TODAY - timedelta(days=35), ahead=0)
    await _insert(conn, "log", NOW - timedelta(days=35), NOW - timedelta(days=33))  # 33: default
    await conn.execute(
        "INSERT INTO ret.notes (at) VALUES ($1), ($2)", NOW - timedelta(days=40), NOW
    )
    report = await run_retention(conn, PLAN, retention_days=30, now=NOW)
    assert report.ran
    assert report.dropped == [f"log_p{TODAY - timedelta(days=35):%Y%m%d}"]
    assert report.deleted == {"log_default": 1, "notes": 1}
    assert len(report.created) == DAYS_AHEAD + 1
    assert await conn.fetchval("SELECT count(*) FROM ret.log") == 0
    assert await conn.fetchval("SELECT count(*) FROM ret.notes") == 1


async def test_only_one_process_runs_a_schemas_retention_at_a_time(conn, database_url):
    other = await asyncpg.connect(database_url)
    try:
        await other.execute("SELECT pg_advisory_lock(5391700, hashtext('ret'))")
        assert (await run_retention(conn, PLAN, retention_days=30, now=NOW)).ran is False
        await other.execute("SELECT pg_advisory_unlock(5391700, hashtext('ret'))")
        reports = await asyncio.gather(
            run_retention(conn, PLAN, retention_days=30, now=NOW),
            run_retention(other, PLAN, retention_days=30, now=NOW),
        )
        assert sum(r.ran for r in reports) >= 1
        assert sorted(await existing_days(conn, LOG)) == [
            TODAY + timedelta(days=n) for n in range(DAYS_AHEAD + 1)
        ]
    finally:
        await other.close()


async def test_a_drop_waits_for_no_long_query_and_is_left_for_the_next_run(conn, database_url):
    old = TODAY - timedelta(days=40)
    await create_partitions(conn, LOG, today=old, ahead=0)
    reader = await asyncpg.connect(database_url)
    try:
        tx = reader.transaction()
        await tx.start()
        await reader.fetchval("SELECT count(*) FROM ret.log")  # holds a lock on the parent
        assert await drop_partitions(conn, LOG, cutoff=NOW - timedelta(days=30)) == []
        await tx.rollback()
        assert await drop_partitions(conn, LOG, cutoff=NOW - timedelta(days=30)) == [
            f"log_p{old:%Y%m%d}"
        ]
    finally:
        await reader.close()


def test_the_retention_command_says_why_it_failed(caplog):
    unreachable = PostgresSettings(url="postgresql://postgres@127.0.0.1:1/none")
    assert retention_main(unreachable, PLAN, []) == 1
    assert retention_main(unreachable, PLAN, ["--every", "soon"]) == 2


async def test_partitions_made_at_the_same_moment_by_two_replicas_are_made_once(conn, database_url):
    other = await asyncpg.connect(database_url)
    try:
        made = await asyncio.gather(
            create_partitions(conn, LOG, today=date(2027, 1, 1)),
            create_partitions(other, LOG, today=date(2027, 1, 1)),
        )
        assert len(await existing_days(conn, LOG)) == DAYS_AHEAD + 1
        assert len(made[0]) + len(made[1]) >= DAYS_AHEAD + 1
    finally:
        await other.close()
