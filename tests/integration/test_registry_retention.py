"""The registry's retention on a real Postgres: audit entries and recovery jobs older than
ROOMHOOKS_RETENTION_DAYS, and portal sessions expired that long ago, leave, younger ones and
jobs still running stay; each batch is found on the time index of migration 0009 (the plan
Postgres chooses, for the values given and the generic one it may cache); the registry runs
the loop itself only when it migrates on start.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.registry.app import Registry
from services.registry.retention import AUDIT_LOG, JOBS, PLAN
from services.registry.settings import RegistrySettings
from shared.partitions import ExpiringTable, delete_expired, retention_cutoff
from shared.retention import run_retention
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 5, 17, 0, tzinfo=UTC)
DAYS = 30
OLD, YOUNG = NOW - timedelta(days=DAYS + 1), NOW - timedelta(days=DAYS - 1)


async def _account(conn: asyncpg.Connection) -> uuid.UUID:
    account = uuid.uuid4()
    await conn.execute("INSERT INTO registry.accounts (id, name) VALUES ($1, 'a')", account)
    return account


async def _audit(conn: asyncpg.Connection, account: uuid.UUID, at: datetime) -> uuid.UUID:
    entry = uuid.uuid4()
    await conn.execute(
        "INSERT INTO registry.audit_log (id, account_id, created_at, actor, action)"
        " VALUES ($1, $2, $3, 'system', 'webhook.disabled')",
        entry,
        account,
        at,
    )
    return entry


async def _job(
    conn: asyncpg.Connection, account: uuid.UUID, at: datetime, progress: str | None
) -> uuid.UUID:
    """A recovery job ordered at `at`; `progress` is the delivery service's status of it
    (None: not begun)."""
    job, webhook = uuid.uuid4(), uuid.uuid4()
    await conn.execute(
        "INSERT INTO registry.jobs (id, organization_id, kind, webhook_id, since, until, total,"
        " created_at) VALUES ($1, $2, 'recover', $3, $4, $4, 0, $4)",
        job,
        account,
        webhook,
        at,
    )
    if progress is not None:
        await conn.execute(
            "INSERT INTO delivery.recoveries (job_id, webhook_id, organization_id, since, until,"
            " status, created_at, updated_at) VALUES ($1, $2, $3, $4, $4, $5, $4, $4)",
            job,
            webhook,
            account,
            at,
            progress,
        )
    return job


async def _portal_session(
    conn: asyncpg.Connection, account: uuid.UUID, expires_at: datetime
) -> uuid.UUID:
    session = uuid.uuid4()
    await conn.execute(
        "INSERT INTO registry.portal_sessions (id, account_id, read_only, link_hash, expires_at,"
        " created_at) VALUES ($1, $2, false, $3, $4::timestamptz,"
        " $4::timestamptz - interval '1 hour')",
        session,
        account,
        session.hex,
        expires_at,
    )
    return session


async def _ids(conn: asyncpg.Connection, table: str) -> set[uuid.UUID]:
    return {r["id"] for r in await conn.fetch(f"SELECT id FROM registry.{table}")}


async def test_audit_entries_and_finished_jobs_past_the_retention_leave_and_the_rest_stay(
    database_url,
):
    conn = await asyncpg.connect(database_url)
    try:
        account = await _account(conn)
        old_entries = {await _audit(conn, account, OLD) for _ in range(3)}
        young_entries = {await _audit(conn, account, YOUNG), await _audit(conn, account, NOW)}
        old_done = await _job(conn, account, OLD, "done")
        old_failed = await _job(conn, account, OLD, "failed")
        old_never_begun = await _job(conn, account, OLD, None)
        old_running = await _job(conn, account, OLD, "running")
        young_done = await _job(conn, account, YOUNG, "done")
        await _portal_session(conn, account, OLD)  # expired long ago
        kept_sessions = {
            await _portal_session(conn, account, YOUNG),  # expired lately
            await _portal_session(conn, account, NOW + timedelta(hours=1)),  # live
        }

        report = await run_retention(conn, PLAN, retention_days=DAYS, now=NOW)

        assert report.ran
        assert report.deleted == {"audit_log": len(old_entries), "jobs": 3, "portal_sessions": 1}
        assert await _ids(conn, "portal_sessions") == kept_sessions
        assert await _ids(conn, "audit_log") == young_entries
        assert await _ids(conn, "jobs") == {old_running, young_done}
        assert {old_done, old_failed, old_never_begun}.isdisjoint(await _ids(conn, "jobs"))
        # the delivery service's progress is its own: never removed here
        assert await conn.fetchval("SELECT count(*) FROM delivery.recoveries") == 4
        again = await run_retention(conn, PLAN, retention_days=DAYS, now=NOW)
        assert again.deleted == {"audit_log": 0, "jobs": 0, "portal_sessions": 0}
    finally:
        await conn.close()


class ExplainingConn:
    """Stands in for the connection of `delete_expired`: plans each DELETE it would run, runs
    none (answers that nothing was deleted, which ends its loop). `generic` asks for the plan
    Postgres caches once a prepared statement has run a few times, made without the values."""

    def __init__(self, conn: asyncpg.Connection, *, generic: bool) -> None:
        self._conn = conn
        self._generic = generic
        self.plans: list[dict] = []

    async def execute(self, sql: str, *args: object) -> str:
        if self._generic:  # EXPLAIN with values always plans for them: PREPARE, EXECUTE
            await self._conn.execute("SET plan_cache_mode = force_generic_plan")
            await self._conn.execute(f"PREPARE expire AS {sql}")
            try:
                values = ", ".join(_literal(a) for a in args)
                plan = await self._conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE expire({values})")
            finally:
                await self._conn.execute("DEALLOCATE expire")
                await self._conn.execute("RESET plan_cache_mode")
        else:
            plan = await self._conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args)
        self.plans.append(json.loads(plan)[0]["Plan"])
        return "DELETE 0"


def _literal(value: object) -> str:
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'::timestamptz"
    return str(value)


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _fill_a_month(conn: asyncpg.Connection, accounts: list[uuid.UUID]) -> None:
    """What the tables hold once retention runs every hour: a month and a bit, the accounts'
    entries interleaved, a few jobs among them still running."""
    start = NOW - timedelta(days=DAYS + 1)
    await conn.execute(
        "INSERT INTO registry.audit_log (id, account_id, created_at, actor, action)"
        " SELECT gen_random_uuid(), ($1::uuid[])[1 + n % array_length($1::uuid[], 1)],"
        "  $2::timestamptz + n * interval '1 minute', 'system', 'webhook.disabled'"
        " FROM generate_series(0, $3) AS n",
        accounts,
        start,
        (DAYS + 1) * 24 * 60,
    )
    await conn.execute(
        "INSERT INTO registry.jobs (id, organization_id, kind, webhook_id, since, until, total,"
        " created_at) SELECT gen_random_uuid(), ($1::uuid[])[1 + n % array_length($1::uuid[], 1)],"
        "  'recover', gen_random_uuid(), t, t, 0, t"
        " FROM generate_series(0, $3) AS n, LATERAL (SELECT $2::timestamptz"
        "  + n * interval '10 minutes' AS t) AS s",
        accounts,
        start,
        (DAYS + 1) * 24 * 6,
    )
    await conn.execute(
        "INSERT INTO delivery.recoveries (job_id, webhook_id, organization_id, since, until,"
        " status, created_at, updated_at) SELECT id, webhook_id, organization_id, since, until,"
        " CASE WHEN random() < 0.05 THEN 'running' ELSE 'done' END, created_at, created_at"
        " FROM registry.jobs"
    )
    await conn.execute("ANALYZE registry.audit_log, registry.jobs, delivery.recoveries")


@pytest.mark.parametrize("generic", [False, True], ids=["custom-plan", "generic-plan"])
@pytest.mark.parametrize(
    ("table", "index"),
    [(AUDIT_LOG, "audit_log_created_idx"), (JOBS, "jobs_created_idx")],
    ids=["audit", "jobs"],
)
async def test_each_batch_of_expired_rows_is_found_on_the_time_index(
    database_url, generic, table: ExpiringTable, index
):
    conn = await asyncpg.connect(database_url)
    try:
        await _fill_a_month(conn, [await _account(conn) for _ in range(20)])
        explaining = ExplainingConn(conn, generic=generic)
        cutoff = retention_cutoff(NOW, retention_days=DAYS)
        await delete_expired(
            explaining,
            table.schema,
            table.table,
            table.column,
            cutoff=cutoff,
            keep_if=table.keep_if,
        )
        [plan] = explaining.plans
        # the batch's rows found on the index, then deleted by their ctid
        scans = sorted(
            (n["Node Type"], n.get("Index Name", ""))
            for n in _nodes(plan)
            if n.get("Relation Name") == table.table
        )
        print(json.dumps(plan, indent=1))
        assert "Seq Scan" not in {kind for kind, _ in scans}, scans
        assert index in {name for _, name in scans}, scans
    finally:
        await conn.close()


def _tasks_named(name: str) -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if t.get_name() == name and not t.done()]


@pytest.mark.parametrize("migrate_on_start", [True, False], ids=["owner", "service-role"])
async def test_the_registry_runs_retention_itself_only_when_it_migrates_on_start(
    postgres_settings, kafka_settings, migrate_on_start
):
    """As the owner (the developer's setup) its loop removes an expired entry; as a service
    role (production) it leaves that to the CronJob and starts no loop."""
    postgres = postgres_settings.model_copy(update={"migrate_on_start": migrate_on_start})
    settings = RegistrySettings(postgres=postgres, kafka=kafka_settings, port=0)
    conn = await asyncpg.connect(postgres.url)
    registry = Registry(settings)
    try:
        expired = await _audit(conn, await _account(conn), datetime.now(UTC) - timedelta(days=40))
        await registry.start()
        loops = _tasks_named("retention")
        if migrate_on_start:
            assert len(loops) == 1

            async def removed() -> bool:
                return expired not in await _ids(conn, "audit_log")

            await eventually(removed, timeout_s=20)
        else:
            assert loops == []
            assert expired in await _ids(conn, "audit_log")
        await registry.stop()
        assert all(loop.done() for loop in loops)  # cancelled at shutdown
    finally:
        await registry.stop()  # again, when a step above failed: nothing left to stop
        await conn.close()
