"""Each execution records its code's fetches (method, URL, status, duration, and the error when
nothing answered), run in the real sandbox through the runner's fetcher to a real local HTTP
server, and the registry's execution detail and log show them; executions recorded before
show null. Workflow migration 0003 adds the column to executions already partitioned by day,
and retention still drops a day whole."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from services.registry.policy import Role
from services.workflow_runner.bindings import Fetcher
from services.workflow_runner.connection_shares import ConnectionShares
from services.workflow_runner.executions import PostgresExecutions
from services.workflow_runner.projection_store import PostgresProjection
from services.workflow_runner.retention import PLAN
from services.workflow_runner.sandbox import Sandbox, SandboxSettings
from services.workflow_runner.service import RunnerMetrics, RunnerService
from shared.db import migration_files, with_database
from shared.guarded_resolver import GuardedResolver
from shared.messages import WorkflowRunRequested, run_id_for
from shared.partitions import create_partitions, partition_name
from shared.retention import run_retention
from shared.ssrf import AddressPolicy
from tests.integration.test_workflows_api import workflows_url
from tests.support.receiver import Receiver, Script

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def sandbox() -> AsyncIterator[Sandbox]:
    sandbox = Sandbox(SandboxSettings(max_hosts=1, wall_timeout_s=5.0))
    await sandbox.start()
    yield sandbox
    await sandbox.close()


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    """As the runner builds it (app.open_fetcher), with loopback allowed as in the dev profile."""
    policy = AddressPolicy.build(allow_loopback=True, allowed_networks=())
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(resolver=GuardedResolver(policy)), auto_decompress=False
    ) as session:
        yield Fetcher(session, policy=policy, timeout_s=5.0, max_bytes=65536)


async def run_code(registry, pool, sandbox, fetcher, code: str) -> tuple[str, str]:
    """A workflow of alice's with `code`, run once by the runner on a real event: (workflow
    id, execution id)."""
    alice = registry.alice
    resp = await registry.http.post(
        workflows_url(registry, alice),
        json={"name": "fetching", "events": ["session.started"], "code": code},
        headers=alice.auth(),
    )
    assert resp.status == 201, await resp.text()
    workflow = (await resp.json())["data"]["workflow"]
    event_id = f"evt-{uuid.uuid4().hex[:8]}"
    request = WorkflowRunRequested(
        run_id=run_id_for(workflow["id"], event_id),
        workflow_id=workflow["id"],
        version=1,
        organization_id=alice.id,
        room_id="room-1",
        event_id=event_id,
        event={"event": "session.started", "organization_id": alice.id, "room": {"id": "room-1"}},
        created_at=datetime.now(UTC),
    )
    shares = ConnectionShares(pool, per_organization=4)
    runner = RunnerService(
        executions=PostgresExecutions(shares),
        projection=PostgresProjection(pool, shares),
        sandbox=sandbox,
        fetcher=fetcher,
        clock=lambda: datetime.now(UTC),
        metrics=RunnerMetrics(CollectorRegistry()),
    )
    assert await runner.run(request) == "success"
    return workflow["id"], request.run_id


async def test_an_execution_shows_each_fetch_in_order_answered_or_not(
    registry, pool, sandbox, fetcher, receiver: Receiver
):
    ok = receiver.script("/ok", Script())
    missing = receiver.script("/missing", Script(statuses=[404]))
    code = (
        "export default async () => {\n"
        f"  await fetch({ok!r});\n"
        f"  await fetch({missing!r}, {{ method: 'POST', body: 'x' }});\n"
        "  try { await fetch('http://10.0.0.1/internal'); } catch (e) { return 'refused'; }\n"
        "  return 'reached';\n"
        "};"
    )
    workflow_id, execution_id = await run_code(registry, pool, sandbox, fetcher, code)

    url = workflows_url(registry, registry.alice, workflow_id) + "/executions"
    resp = await registry.http.get(
        f"{url}/{execution_id}", headers=registry.alice.auth(Role.MEMBER)
    )
    assert resp.status == 200
    execution = (await resp.json())["data"]["execution"]
    assert execution["result"] == "refused"
    fetches = execution["fetches"]
    assert [(f["method"], f["url"], f["status"]) for f in fetches] == [
        ("GET", ok, 200),
        ("POST", missing, 404),
        ("GET", "http://10.0.0.1/internal", None),
    ]
    assert all(isinstance(f["duration_ms"], int) and f["duration_ms"] >= 0 for f in fetches)
    assert [f["error"] is None for f in fetches] == [True, True, False]
    assert "10.0.0.1" in fetches[2]["error"]

    listed = await registry.http.get(url, headers=registry.alice.auth())
    [shown] = (await listed.json())["data"]["executions"]
    assert shown["fetches"] == fetches


async def test_code_that_fetches_nothing_shows_none_and_older_executions_null(
    registry, pool, sandbox, fetcher
):
    code = "export default async () => 1;"
    workflow_id, execution_id = await run_code(registry, pool, sandbox, fetcher, code)
    url = workflows_url(registry, registry.alice, workflow_id) + "/executions"
    resp = await registry.http.get(f"{url}/{execution_id}", headers=registry.alice.auth())
    assert (await resp.json())["data"]["execution"]["fetches"] == []

    await pool.execute(  # as recorded before fetches were kept
        "UPDATE workflow.executions SET fetches = NULL WHERE id = $1", uuid.UUID(execution_id)
    )
    resp = await registry.http.get(f"{url}/{execution_id}", headers=registry.alice.auth())
    assert (await resp.json())["data"]["execution"]["fetches"] is None


async def test_the_migration_adds_the_column_to_every_day_and_retention_still_drops_one(
    postgres_url,
):
    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    old, young = (now - timedelta(days=40)).date(), (now - timedelta(days=2)).date()
    [table] = PLAN.partitioned
    name = f"rh_migrate_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(with_database(postgres_url, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    conn = await asyncpg.connect(with_database(postgres_url, name))
    insert = (
        "INSERT INTO workflow.executions (id, workflow_id, organization_id, version, event_id,"
        " event, status, created_at, updated_at)"
        " VALUES ($1, $1, $1, 1, 'e', 'x', 'success', $2, $2)"
    )
    try:
        files = migration_files("services.workflow_runner")
        await conn.execute("CREATE SCHEMA workflow; SET search_path TO workflow, public")
        [adding] = [sql for version, sql in files if version.startswith("0003")]
        for version, sql in files:
            if version < "0003":
                await conn.execute(sql)
        await create_partitions(conn, table, today=old, ahead=0)
        before = uuid.uuid4()
        await conn.execute(insert, before, datetime.combine(old, datetime.min.time(), UTC))

        await conn.execute(adding)

        await create_partitions(conn, table, today=young, ahead=0)
        having = {
            r["relname"]
            for r in await conn.fetch(
                "SELECT c.relname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
                " WHERE a.attname = 'fetches' AND NOT a.attisdropped"
            )
        }
        kept = await conn.fetchval("SELECT fetches FROM workflow.executions WHERE id = $1", before)
        report = await run_retention(conn, PLAN, retention_days=30, now=now)
        left = await conn.fetchval("SELECT count(*) FROM workflow.executions")
    finally:
        await conn.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    old_day, young_day = partition_name("executions", old), partition_name("executions", young)
    assert {"executions", "executions_default", old_day, young_day} <= having
    assert kept is None
    assert old_day in report.dropped and left == 0
