"""The event log's and the executions' retention on a real Postgres: a day older than
ROOMHOOKS_RETENTION_DAYS leaves whole (its partition dropped), and so do the default
partition's expired rows (rows of days without a partition, as the migrations copied them);
younger ones stay. Fanout and the runner run the loop themselves only when they migrate on start.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.fanout.app import Fanout
from services.fanout.event_log import LoggedEvent
from services.fanout.repository import PostgresEventLog
from services.fanout.retention import PLAN as EVENTS_PLAN
from services.fanout.settings import FanoutSettings
from services.workflow_runner import executions
from services.workflow_runner.app import Runner
from services.workflow_runner.retention import PLAN as WORKFLOW_PLAN
from services.workflow_runner.settings import RunnerSettings
from shared.messages import WorkflowRunRequested, run_id_for
from shared.partitions import create_partitions
from shared.retention import run_retention
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

DAYS = 30
NOW = datetime.now(UTC)
# Days with a partition of their own, and days whose rows sit in the default partition.
OLD_DAY, YOUNG_DAY = NOW - timedelta(days=DAYS + 10), NOW - timedelta(days=DAYS - 10)
OLD_STRAY, YOUNG_STRAY = NOW - timedelta(days=DAYS + 3), NOW - timedelta(days=DAYS - 3)


def logged(at: datetime) -> LoggedEvent:
    return LoggedEvent(
        uuid.uuid4(), uuid.uuid4(), "evt", "session.started", "r", "accepted", None, "{}",
        (), (), at,
    )  # fmt: skip


def run(at: datetime) -> WorkflowRunRequested:
    workflow_id, event_id = str(uuid.uuid4()), f"evt-{uuid.uuid4().hex[:8]}"
    return WorkflowRunRequested(
        run_id=run_id_for(workflow_id, event_id), workflow_id=workflow_id, version=1,
        organization_id=str(uuid.uuid4()), room_id=None, event_id=event_id,
        event={"event": "session.started"}, created_at=at,
    )  # fmt: skip


async def record_event(pool: asyncpg.Pool, at: datetime) -> uuid.UUID:
    """As fanout records one."""
    entry = logged(at)
    await PostgresEventLog(pool).record([entry])
    return entry.id


async def record_execution(pool: asyncpg.Pool, at: datetime) -> uuid.UUID:
    """As the runner records one that ended."""
    requested = run(at)
    async with pool.acquire() as conn:
        await executions.finish(
            conn, requested, status="success", started_at=at, duration_ms=1, result=None,
            error=None, logs=[], now=at,
        )  # fmt: skip
    return uuid.UUID(requested.run_id)


async def where(pool: asyncpg.Pool, table: str, ids: list[uuid.UUID]) -> list[str | None]:
    """The partition each row is in, None once it is gone."""
    rows = await pool.fetch(
        f"SELECT id, tableoid::regclass::text AS partition FROM {table} WHERE id = ANY($1)", ids
    )
    found = {r["id"]: r["partition"].split(".")[-1] for r in rows}
    return [found.get(i) for i in ids]


CASES = {
    "events": (EVENTS_PLAN, record_event, "events.events"),
    "executions": (WORKFLOW_PLAN, record_execution, "workflow.executions"),
}


@pytest.mark.parametrize("kind", CASES)
async def test_an_old_day_leaves_whole_and_younger_ones_stay(pool, kind):
    plan, record, table = CASES[kind]
    [partitioned] = plan.partitioned
    async with pool.acquire() as conn:
        for day in (OLD_DAY, YOUNG_DAY):
            await create_partitions(conn, partitioned, today=day.date(), ahead=0)
    stamps = [OLD_DAY, YOUNG_DAY, OLD_STRAY, YOUNG_STRAY, NOW]
    ids = [await record(pool, at) for at in stamps]
    name = partitioned.table
    old, young = f"{name}_p{OLD_DAY:%Y%m%d}", f"{name}_p{YOUNG_DAY:%Y%m%d}"
    today, default = f"{name}_p{NOW:%Y%m%d}", partitioned.default_partition
    assert await where(pool, table, ids) == [old, young, default, default, today]

    async with pool.acquire() as conn:
        report = await run_retention(conn, plan, retention_days=DAYS, now=NOW)
        again = await run_retention(conn, plan, retention_days=DAYS, now=NOW)
    assert report.dropped == [old]
    assert report.deleted == {default: 1}
    assert await where(pool, table, ids) == [None, young, None, default, today]
    assert (again.dropped, again.deleted) == ([], {default: 0})


def _tasks_named(name: str) -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if t.get_name() == name and not t.done()]


@pytest.mark.parametrize("migrate_on_start", [True, False], ids=["owner", "service-role"])
async def test_fanout_runs_retention_itself_only_when_it_migrates_on_start(
    pool, postgres_settings, kafka_settings, migrate_on_start
):
    postgres = postgres_settings.model_copy(update={"migrate_on_start": migrate_on_start})
    expired = await record_event(pool, OLD_STRAY)
    fanout = Fanout(FanoutSettings(postgres=postgres, kafka=kafka_settings, health_port=0))
    async with fanout:
        await _only_when_migrating(pool, "events.events", expired, migrate_on_start)
    assert _tasks_named("retention") == []  # cancelled at shutdown


@pytest.mark.parametrize("migrate_on_start", [True, False], ids=["owner", "service-role"])
async def test_the_runner_runs_retention_itself_only_when_it_migrates_on_start(
    pool, postgres_settings, kafka_settings, migrate_on_start
):
    postgres = postgres_settings.model_copy(update={"migrate_on_start": migrate_on_start})
    expired = await record_execution(pool, OLD_STRAY)
    runner = Runner(RunnerSettings(postgres=postgres, kafka=kafka_settings, health_port=0))
    await runner.start()
    try:
        await _only_when_migrating(pool, "workflow.executions", expired, migrate_on_start)
    finally:
        await runner.stop()
    assert _tasks_named("retention") == []  # cancelled at shutdown


async def _only_when_migrating(
    pool: asyncpg.Pool, table: str, expired: uuid.UUID, migrate_on_start: bool
) -> None:
    """As the owner (the developer's setup) its loop removes an expired row; as a service role
    (production) it leaves that to the CronJob and starts no loop."""
    loops = _tasks_named("retention")
    if not migrate_on_start:
        assert loops == []
        assert await where(pool, table, [expired]) == [f"{table.split('.')[1]}_default"]
        return
    assert len(loops) == 1

    async def removed() -> bool:
        return await where(pool, table, [expired]) == [None]

    await eventually(removed, timeout_s=20)
