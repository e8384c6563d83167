"""The delivery schema's retention (services/delivery/retention.py) on real Postgres: a day of
deliveries past the retention period leaves whole, its attempts with it, by partition drops;
younger days stay, and the registry still shows their deliveries with their attempts. Stats
and finished recovery jobs leave in batches; running jobs and endpoint health stay. Storing a
request twice stores one delivery. The migration copies what an installation held."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from services.delivery import repository
from services.delivery.retention import ATTEMPTS, DELIVERIES, PLAN
from services.delivery.rows import AttemptRow, Job
from services.registry.deliveries.repository import PostgresDeliveryLog
from services.registry.deliveries.service import DeliveryLogService
from services.registry.webhooks.repository import WebhookSql
from shared.db import migration_files, with_database
from shared.kafka import Topics
from shared.messages import DeliveryRequested, delivery_id_for
from shared.partitions import create_partitions, day_start, existing_days, partition_name
from shared.retention import run_retention
from shared.settings import KafkaSettings
from tests.support.registry_contracts import webhook_row

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 5, 17, 0, tzinfo=UTC)
RETENTION_DAYS = 30
OLD = (NOW - timedelta(days=RETENTION_DAYS + 10)).date()  # past the retention period
YOUNG = (NOW - timedelta(days=5)).date()


@pytest.fixture
async def conn(database_url) -> asyncpg.Connection:
    conn = await asyncpg.connect(database_url)
    for day in (OLD, YOUNG):
        for table in (DELIVERIES, ATTEMPTS):
            await create_partitions(conn, table, today=day, ahead=0)
    yield conn
    await conn.close()


def request(webhook: uuid.UUID, org: uuid.UUID, event_id: str, at: datetime) -> DeliveryRequested:
    return DeliveryRequested(
        delivery_id=delivery_id_for(str(webhook), event_id),
        webhook_id=str(webhook),
        organization_id=str(org),
        event_id=event_id,
        event="participant.joined",
        body='{"n":1}',
        created_at=at,
    )


async def attempted_twice(
    conn: asyncpg.Connection, webhook: uuid.UUID, org: uuid.UUID, day: date, count: int
) -> list[Job]:
    """`count` deliveries created on `day`, each attempted twice (a retry, then success)."""
    made = day_start(day) + timedelta(hours=9)
    requests = [
        request(webhook, org, f"{day}-{n}", made + timedelta(minutes=n)) for n in range(count)
    ]
    jobs = await repository.insert_requested(conn, requests, now=made, lease_until=made)
    for number, status in ((1, "pending"), (2, "success")):
        rows = [attempt(job, number, status, made) for job in jobs]
        assert await repository.record_attempts(conn, rows, now=made) == count
    return jobs


def attempt(job: Job, number: int, status: str, at: datetime) -> AttemptRow:
    return AttemptRow(
        delivery_id=job.id,
        delivery_created_at=job.created_at,
        attempt=number,
        started_at=at + timedelta(seconds=number),
        duration_ms=20,
        status_code=200 if status == "success" else 503,
        error=None if status == "success" else "HTTP 503",
        response_body="ok",
        status=status,
        next_attempt_at=at + timedelta(seconds=5) if status == "pending" else None,
    )


async def where(conn: asyncpg.Connection, table: str, column: str, ids: list[uuid.UUID]) -> dict:
    rows = await conn.fetch(
        f"SELECT tableoid::regclass::text AS part, count(*) AS n FROM delivery.{table}"
        f" WHERE {column} = ANY($1::uuid[]) GROUP BY 1",
        ids,
    )
    return {r["part"]: r["n"] for r in rows}


async def test_a_day_past_retention_leaves_whole_with_its_attempts_and_younger_days_stay(conn):
    webhook, org = uuid.uuid4(), uuid.uuid4()
    old = [job.id for job in await attempted_twice(conn, webhook, org, OLD, 3)]
    young = [job.id for job in await attempted_twice(conn, webhook, org, YOUNG, 2)]
    old_deliveries = f"delivery.{partition_name('deliveries', OLD)}"
    old_attempts = f"delivery.{partition_name('delivery_attempts', OLD)}"
    assert await where(conn, "deliveries", "id", old) == {old_deliveries: 3}
    assert await where(conn, "delivery_attempts", "delivery_id", old) == {old_attempts: 6}

    report = await run_retention(conn, PLAN, retention_days=RETENTION_DAYS, now=NOW)

    assert report.ran
    assert partition_name("deliveries", OLD) in report.dropped
    assert partition_name("delivery_attempts", OLD) in report.dropped
    # Removed by the drops: nothing was deleted row by row.
    assert report.deleted["deliveries_default"] == report.deleted["delivery_attempts_default"] == 0
    assert await where(conn, "deliveries", "id", old) == {}
    assert await where(conn, "delivery_attempts", "delivery_id", old) == {}
    assert await where(conn, "deliveries", "id", young) == {
        f"delivery.{partition_name('deliveries', YOUNG)}": 2
    }
    assert await where(conn, "delivery_attempts", "delivery_id", young) == {
        f"delivery.{partition_name('delivery_attempts', YOUNG)}": 4
    }
    for table in (DELIVERIES, ATTEMPTS):
        days = await existing_days(conn, table)
        assert OLD not in days and YOUNG in days


async def test_old_rows_of_the_default_partitions_leave_in_batches(conn):
    webhook, org = uuid.uuid4(), uuid.uuid4()
    without_partition = (NOW - timedelta(days=RETENTION_DAYS + 3)).date()
    [job] = await attempted_twice(conn, webhook, org, without_partition, 1)
    assert await where(conn, "deliveries", "id", [job.id]) == {"delivery.deliveries_default": 1}

    report = await run_retention(conn, PLAN, retention_days=RETENTION_DAYS, now=NOW)

    assert (report.deleted["deliveries_default"], report.deleted["delivery_attempts_default"]) == (
        1,
        2,
    )
    assert await where(conn, "delivery_attempts", "delivery_id", [job.id]) == {}


async def test_stats_and_finished_recoveries_expire_while_running_jobs_and_health_stay(conn):
    webhook, org = uuid.uuid4(), uuid.uuid4()
    old, young = NOW - timedelta(days=RETENTION_DAYS + 1), NOW - timedelta(days=1)
    await conn.executemany(
        "INSERT INTO delivery.attempt_stats (webhook_id, period_s, bucket_start, attempts,"
        " successes, gave_up, latency_ms) VALUES ($1, 3600, $2, 1, 1, 0, '{1}')",
        [(webhook, old), (webhook, young)],
    )
    jobs = {
        "old done": (old, "done"),
        "old running": (old, "running"),
        "young done": (young, "done"),
    }
    ids = {name: uuid.uuid4() for name in jobs}
    for name, (at, status) in jobs.items():
        await conn.execute(
            "INSERT INTO delivery.recoveries (job_id, webhook_id, organization_id, since, until,"
            " status, created_at, updated_at) VALUES ($1, $2, $3, $4, $4, $5, $4, $4)",
            ids[name],
            webhook,
            org,
            at,
            status,
        )
        await conn.execute(
            "INSERT INTO delivery.recovery_items (job_id, delivery_id, delivery_created_at,"
            " attempts_before) VALUES ($1, $2, $3, 1)",
            ids[name],
            uuid.uuid4(),
            at,
        )
    await conn.execute(
        "INSERT INTO delivery.webhook_health (webhook_id, last_success_at, updated_at)"
        " VALUES ($1, $2, $2)",
        webhook,
        old,
    )

    report = await run_retention(conn, PLAN, retention_days=RETENTION_DAYS, now=NOW)

    assert (report.deleted["attempt_stats"], report.deleted["recoveries"]) == (1, 1)
    stats = await conn.fetch("SELECT bucket_start FROM delivery.attempt_stats")
    assert [r["bucket_start"] for r in stats] == [young]
    kept = {r["job_id"] for r in await conn.fetch("SELECT job_id FROM delivery.recoveries")}
    assert kept == {ids["old running"], ids["young done"]}
    items = {r["job_id"] for r in await conn.fetch("SELECT job_id FROM delivery.recovery_items")}
    assert items == kept  # the finished job's items went with it
    assert await conn.fetchval("SELECT count(*) FROM delivery.webhook_health") == 1


async def test_a_request_stored_twice_is_one_delivery_and_one_job(conn):
    webhook, org = uuid.uuid4(), uuid.uuid4()
    again = request(webhook, org, "e1", day_start(YOUNG) + timedelta(hours=3))
    jobs = [
        *await repository.insert_requested(conn, [again, again], now=NOW, lease_until=NOW),
        *await repository.insert_requested(conn, [again], now=NOW, lease_until=NOW),
    ]
    assert [(str(job.id), job.created_at) for job in jobs] == [
        (again.delivery_id, again.created_at)
    ]
    assert await where(conn, "deliveries", "id", [jobs[0].id]) == {
        f"delivery.{partition_name('deliveries', YOUNG)}": 1
    }


async def test_the_registry_shows_a_kept_delivery_with_its_attempts_after_retention(
    conn, database_url
):
    org = uuid.uuid4()
    await conn.execute("INSERT INTO registry.accounts (id, name) VALUES ($1, 'kept')", org)
    hook = webhook_row(org)
    await WebhookSql(conn).insert(hook)
    [job] = await attempted_twice(conn, hook.id, org, YOUNG, 1)
    await attempted_twice(conn, hook.id, org, OLD, 1)
    await run_retention(conn, PLAN, retention_days=RETENTION_DAYS, now=NOW)

    pool = await asyncpg.create_pool(dsn=database_url, min_size=1, max_size=2)
    try:
        log = DeliveryLogService(
            PostgresDeliveryLog(pool), Topics.from_settings(KafkaSettings()), lambda: NOW
        )
        delivery, attempts = await log.get(str(org), str(hook.id), str(job.id))
        page = await log.list(str(org), str(hook.id), limit=10, status=None, cursor=None)
    finally:
        await pool.close()
    assert (delivery.id, delivery.attempts, delivery.status) == (str(job.id), 2, "success")
    assert [a.attempt for a in attempts] == [1, 2]
    assert [d.id for d in page.deliveries] == [str(job.id)]  # the old day's is gone


async def test_the_migration_copies_deliveries_attempts_and_recovery_items(postgres_url):
    name = f"rh_migrate_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(with_database(postgres_url, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    conn = await asyncpg.connect(with_database(postgres_url, name))
    try:
        files = migration_files("services.delivery")
        await conn.execute("CREATE SCHEMA delivery; SET search_path TO delivery, public")
        for version, sql in files:
            if version.startswith("0004"):
                break
            await conn.execute(sql)
        webhook, gone = uuid.uuid4(), uuid.uuid4()
        await conn.execute(
            """
            INSERT INTO deliveries (id, webhook_id, organization_id, event_id, event, payload,
                status, attempts, created_at, updated_at)
            SELECT ('00000000-0000-0000-0000-00000000000' || g)::uuid, $1, $1, 'e' || g, 'x',
                '{}', 'failed', 1, $2::timestamptz - g * interval '1 day', $2
            FROM generate_series(1, 3) g;
            INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms)
            SELECT id, 1, created_at, 5 FROM deliveries;
            INSERT INTO recoveries (job_id, webhook_id, organization_id, since, until, status,
                created_at, updated_at) VALUES ($1, $1, $1, $2, $2, 'running', $2, $2);
            INSERT INTO recovery_items (job_id, delivery_id, attempts_before)
            SELECT $1, id, 1 FROM deliveries;
            """.replace("$1", f"'{webhook}'").replace("$2", f"'{NOW.isoformat()}'")
        )
        await conn.execute(
            "INSERT INTO recovery_items (job_id, delivery_id, attempts_before) VALUES ($1, $2, 0)",
            webhook,
            gone,
        )
        [sql] = [sql for version, sql in files if version.startswith("0004")]
        await conn.execute(sql)

        copied = await conn.fetch(
            "SELECT d.tableoid::regclass::text AS part, d.id, d.created_at,"
            " a.delivery_created_at, a.tableoid::regclass::text AS attempt_part"
            " FROM deliveries d JOIN delivery_attempts a ON a.delivery_id = d.id"
        )
        items = await conn.fetch(
            "SELECT delivery_id, delivery_created_at,"
            " delivery_created_at = '-infinity' AS no_delivery FROM recovery_items"
        )
    finally:
        await conn.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    assert len(copied) == 3
    assert all(r["delivery_created_at"] == r["created_at"] for r in copied)
    assert {(r["part"], r["attempt_part"]) for r in copied} == {
        ("deliveries_default", "delivery_attempts_default")
    }
    # An item whose delivery was already gone gets no day any delivery has.
    assert {r["delivery_id"] for r in items if r["no_delivery"]} == {gone}
    kept = {r["delivery_id"]: r["delivery_created_at"] for r in items if not r["no_delivery"]}
    assert kept == {r["id"]: r["created_at"] for r in copied}
