"""GET .../workflows/{id}/stats on the real registry and Postgres: executions per status and
the p95 duration over the webhook stats' windows, any role, another account's workflow a 404,
a bad window a 400 naming it; and the statement reads only the window's days, on an index,
never every execution of the workflow or its account."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.registry.deliveries.stats import window_start
from services.registry.policy import Role
from services.registry.workflows.repository import stats_days, stats_query
from tests.integration.test_event_log_indexes import (
    DAYS,
    T0,
    parent_indexes,
    partitioned,
    partitions_holding_rows,
    plan_nodes,
)
from tests.integration.test_execution_log_indexes import fill
from tests.integration.test_workflows_api import create, workflows_url

pytestmark = pytest.mark.integration

OTHER_WORKFLOWS = 40


async def ran(pool, workflow: dict, *, at: datetime, status: str, ms: int | None) -> None:
    """An execution as the workflow runner records one."""
    await pool.execute(
        "INSERT INTO workflow.executions (id, workflow_id, organization_id, version, event_id,"
        " event, status, started_at, duration_ms, created_at, updated_at)"
        " VALUES ($1, $2, $3, 1, $4, 'participant.joined', $5, $6, $7, $6, $6)",
        uuid.uuid4(),
        uuid.UUID(workflow["id"]),
        uuid.UUID(workflow["organization_id"]),
        f"evt-{uuid.uuid4().hex[:8]}",
        status,
        at,
        ms,
    )


async def stats(registry, workflow_id: str, *, account=None, role=Role.MEMBER, **params):
    account = account or registry.alice
    url = workflows_url(registry, account, workflow_id) + "/stats"
    resp = await registry.http.get(url, params=params, headers=account.auth(role))
    return resp.status, await resp.json()


async def test_stats_count_the_executions_per_status_with_their_p95_for_any_role(registry, pool):
    _, body = await create(registry)
    workflow = body["data"]["workflow"]
    now = datetime.now(UTC)
    for ms in [20] * 18 + [400, 3000]:
        await ran(pool, workflow, at=now - timedelta(seconds=5), status="success", ms=ms)
    await ran(pool, workflow, at=now - timedelta(seconds=5), status="error", ms=15)
    await ran(pool, workflow, at=now - timedelta(seconds=5), status="timeout", ms=5000)
    await ran(pool, workflow, at=now - timedelta(seconds=5), status="running", ms=None)
    await ran(pool, workflow, at=now - timedelta(days=2), status="success", ms=1)

    status, body = await stats(registry, workflow["id"], window="1h")
    assert status == 200, body
    s = body["data"]["stats"]
    assert (s["workflow_id"], s["window"], s["executions"]) == (workflow["id"], "1h", 23)
    assert s["statuses"] == {"running": 1, "success": 20, "error": 1, "timeout": 1}
    assert s["duration_p95_ms"] == 3000
    assert len(s["buckets"]) == 60
    busy = [b for b in s["buckets"] if b["executions"]]
    assert [b["executions"] for b in busy] == [23] and busy[0]["duration_p95_ms"] == 3000
    empty = s["buckets"][0]
    assert empty["statuses"] == {"running": 0, "success": 0, "error": 0, "timeout": 0}
    assert empty["duration_p95_ms"] is None

    for window, buckets, count in (("24h", 24, 23), ("7d", 168, 24)):
        status, body = await stats(registry, workflow["id"], window=window)
        assert status == 200, body
        assert len(body["data"]["stats"]["buckets"]) == buckets
        assert body["data"]["stats"]["executions"] == count


async def test_a_workflow_without_executions_answers_zeros_over_a_day_by_default(registry):
    _, body = await create(registry)
    status, body = await stats(registry, body["data"]["workflow"]["id"])
    assert status == 200, body
    s = body["data"]["stats"]
    assert (s["window"], s["executions"], s["duration_p95_ms"]) == ("24h", 0, None)
    assert len(s["buckets"]) == 24


async def test_another_accounts_workflow_is_a_404(registry):
    _, body = await create(registry)
    workflow_id = body["data"]["workflow"]["id"]
    status, _ = await stats(registry, workflow_id, account=registry.bob, role=Role.OWNER)
    assert status == 404
    status, _ = await stats(registry, str(uuid.uuid4()))
    assert status == 404


@pytest.mark.parametrize("window", ["1d", "30d", "1H", " 1h", "1h,24h", "x" * 300])
async def test_a_window_not_offered_is_a_400_naming_it(registry, window):
    _, body = await create(registry)
    status, body = await stats(registry, body["data"]["workflow"]["id"], window=window)
    assert status == 400, body
    assert body["error"]["details"] == [
        {"field": "window", "message": "must be one of 1h, 24h, 7d"}
    ]


@pytest.mark.parametrize("generic", [False, True], ids=["custom-plan", "generic-plan"])
async def test_a_days_stats_read_only_that_days_executions_on_an_index(pool, generic):
    busy = uuid.uuid4()
    await partitioned(pool)
    await fill(pool, busy, 10_000)  # over DAYS days, about 2,500 a day
    for _ in range(OTHER_WORKFLOWS):  # each day's partition holds many workflows' runs
        await fill(pool, uuid.uuid4(), 2_000)
    await pool.execute("ANALYZE workflow.executions")
    org = await pool.fetchval(
        "SELECT organization_id FROM workflow.executions WHERE workflow_id = $1 LIMIT 1", busy
    )
    parents = await parent_indexes(pool)
    filled = await partitions_holding_rows(pool, "workflow.executions")
    now = T0 + timedelta(days=DAYS - 1, hours=12)  # each day to the end of tomorrow has a partition
    period_s, since = window_start("24h", now)
    sql, args = stats_query(
        org, busy, period_s=period_s, since=since, days=stats_days(since, now, DAYS)
    )
    in_window = await pool.fetchval(
        "SELECT count(*) FROM workflow.executions WHERE workflow_id = $1 AND created_at >= $2",
        busy,
        since,
    )

    nodes = await plan_nodes(pool, sql, *args, generic=generic, analyze=True)
    scans = [n for n in nodes if "Scan" in n["Node Type"] and n.get("Actual Loops", 0) > 0]
    read = {n["Relation Name"] for n in scans if "Relation Name" in n} | {
        n["Index Name"].split("_workflow_id")[0] for n in scans if "Index Name" in n
    }
    kinds = {n["Node Type"] for n in scans if n.get("Relation Name") in filled}
    assert "Seq Scan" not in kinds, kinds
    assert {parents[n["Index Name"]] for n in scans if "Index Name" in n} == {"executions_log_idx"}
    assert not any(name.startswith("executions_default") for name in read), read
    # The rows the table scans returned (a bitmap's index scan counts them once more).
    rows_read = sum(n["Actual Rows"] * n["Actual Loops"] for n in scans if "Relation Name" in n)
    assert 0 < in_window <= rows_read <= in_window + 10, (rows_read, in_window)
