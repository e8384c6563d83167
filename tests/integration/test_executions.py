"""The execution log in a real Postgres: a run begun once, and its end recorded whether or not
its `running` row survived (the runner does not wait for that row's flush); each run in its
day's partition, kept once however often its request is read."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.workflow_runner import executions
from services.workflow_runner.retention import PLAN
from shared.messages import WorkflowRunRequested, run_id_for
from shared.partitions import create_partitions

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
[EXECUTIONS] = PLAN.partitioned


def a_run() -> WorkflowRunRequested:
    workflow_id, event_id = str(uuid.uuid4()), f"evt-{uuid.uuid4().hex[:8]}"
    return WorkflowRunRequested(
        run_id=run_id_for(workflow_id, event_id),
        workflow_id=workflow_id,
        version=3,
        organization_id=str(uuid.uuid4()),
        room_id=None,
        event_id=event_id,
        event={"event": "participant.joined", "data": {}},
        created_at=NOW,
    )


async def finish(conn, run: WorkflowRunRequested, status: str = "success") -> None:
    await executions.finish(
        conn, run, status=status, started_at=NOW + timedelta(seconds=1), duration_ms=12,
        result={"ok": True}, error=None, logs=[{"level": "log", "message": "hi"}],
        now=NOW + timedelta(seconds=2),
    )  # fmt: skip


async def row(conn, run: WorkflowRunRequested):
    return await conn.fetchrow(
        "SELECT workflow_id, organization_id, version, event_id, event, status, duration_ms,"
        " result, logs, created_at, updated_at FROM workflow.executions WHERE id = $1",
        uuid.UUID(run.run_id),
    )


async def test_a_run_is_begun_once_and_not_again_once_finished(pool):
    run = a_run()
    async with pool.acquire() as conn:
        assert await executions.begin(conn, run, now=NOW)
        assert await executions.begin(conn, run, now=NOW)  # left `running`: taken again
        await finish(conn, run)
        assert not await executions.begin(conn, run, now=NOW)
        assert (await row(conn, run))["status"] == "success"


async def test_a_finish_whose_running_row_was_lost_records_the_whole_run(pool):
    run = a_run()
    async with pool.acquire() as conn:
        await finish(conn, run, status="timeout")  # no begin: as after a Postgres crash
        recorded = await row(conn, run)
    assert dict(recorded) == {
        "workflow_id": uuid.UUID(run.workflow_id),
        "organization_id": uuid.UUID(run.organization_id),
        "version": 3,
        "event_id": run.event_id,
        "event": "participant.joined",
        "status": "timeout",
        "duration_ms": 12,
        "result": {"ok": True},
        "logs": [{"level": "log", "message": "hi"}],
        "created_at": NOW,
        "updated_at": NOW + timedelta(seconds=2),
    }


async def test_an_event_name_postgres_text_refuses_is_recorded_escaped_and_bounded(pool):
    run = a_run().model_copy(update={"event": {"event": "joined\x00\ud800" + "x" * 500}})
    async with pool.acquire() as conn:
        assert await executions.begin(conn, run, now=NOW)
        await finish(conn, run)
        recorded = (await row(conn, run))["event"]
    assert recorded.startswith("joined\\u0000\\ud800x")
    assert len(recorded) == executions.MAX_EVENT_NAME


async def test_a_run_is_recorded_once_in_its_days_partition_however_often_it_is_requested(pool):
    run = a_run()
    async with pool.acquire() as conn:
        await create_partitions(conn, EXECUTIONS, today=NOW.date(), ahead=0)
        again = WorkflowRunRequested.model_validate_json(run.model_dump_json())  # read again
        assert await executions.begin(conn, run, now=NOW)
        await finish(conn, run)
        assert not await executions.begin(conn, again, now=NOW + timedelta(seconds=5))
        await finish(conn, again, status="error")  # a finish read again overwrites the end
        rows = await conn.fetch(
            "SELECT tableoid::regclass::text AS partition, status FROM workflow.executions"
            " WHERE id = $1",
            uuid.UUID(run.run_id),
        )
    assert [tuple(r) for r in rows] == [(f"workflow.executions_p{NOW:%Y%m%d}", "error")]
