"""The runner's use cases in a real Postgres, with a scripted sandbox standing in for Deno
(test_workflow_pipeline.py runs the real one): what a run gives back is recorded, cleaned
where Postgres could not take it as it is, and a run is never begun again for it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from services.workflow_runner import executions
from services.workflow_runner.connection_shares import ConnectionShares
from services.workflow_runner.executions import PostgresExecutions
from services.workflow_runner.projection_store import PostgresProjection
from services.workflow_runner.sandbox import RunOutcome
from services.workflow_runner.service import RunnerMetrics, RunnerService
from shared.failures import is_content_error
from shared.messages import WorkflowRunRequested, run_id_for
from tests.support.runner_fakes import FakeFetcher

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
CODE = "export default async function() { return 1; }"


class ScriptedSandbox:
    """Answers every run with `answer`, or raises it."""

    def __init__(self, answer: RunOutcome | BaseException) -> None:
        self.answer = answer
        self.runs = 0

    async def run(self, _request, _bindings) -> RunOutcome:
        self.runs += 1
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def service_with(pool, sandbox: ScriptedSandbox) -> RunnerService:
    shares = ConnectionShares(pool, per_organization=4)
    return RunnerService(
        executions=PostgresExecutions(shares),
        projection=PostgresProjection(pool, shares),
        sandbox=sandbox,
        fetcher=FakeFetcher(),
        clock=lambda: NOW,
        metrics=RunnerMetrics(CollectorRegistry()),
    )


async def a_run(registry) -> WorkflowRunRequested:
    alice = registry.alice
    resp = await registry.http.post(
        f"{registry.url}/v1/accounts/{alice.id}/workflows",
        json={"name": "w", "events": ["session.started"], "code": CODE},
        headers=alice.auth(),
    )
    assert resp.status == 201, await resp.text()
    workflow = (await resp.json())["data"]["workflow"]
    event_id = f"evt-{uuid.uuid4().hex[:8]}"
    return WorkflowRunRequested(
        run_id=run_id_for(workflow["id"], event_id),
        workflow_id=workflow["id"],
        version=workflow["version"],
        organization_id=alice.id,
        room_id="room\x00-1",
        event_id=event_id,
        event={
            "event": "session.started",
            "organization_id": alice.id,
            "room": {"id": "room\x00-1", "name": "N\x00"},
        },
        created_at=NOW,
    )


async def recorded(pool, run: WorkflowRunRequested):
    return await pool.fetchrow(
        "SELECT status, result, error, logs FROM workflow.executions WHERE id = $1",
        uuid.UUID(run.run_id),
    )


async def test_an_outcome_with_nul_and_lone_surrogates_is_recorded_escaped_and_not_run_again(
    pool, registry
):
    outcome = RunOutcome(
        status="error",
        started_at=NOW,
        duration_ms=5,
        result={"k\x00": "x\x00y"},
        error={"message": "bad\ud800", "stack": "at \x00"},
        logs=[{"level": "log", "message": "a\x00b"}],
    )
    sandbox = ScriptedSandbox(outcome)
    service = service_with(pool, sandbox)
    run = await a_run(registry)
    assert await service.run(run) == "error"
    row = await recorded(pool, run)
    assert dict(row) == {
        "status": "error",
        "result": {"k\\u0000": "x\\u0000y"},
        "error": {"message": "bad\\ud800", "stack": "at \\u0000"},
        "logs": [{"level": "log", "message": "a\\u0000b"}],
    }
    assert await service.run(run) is None  # read again: recorded, so not run again
    assert sandbox.runs == 1
    rooms = await pool.fetch("SELECT room_id, data FROM workflow.rooms")
    assert [(r["room_id"], r["data"]["name"]) for r in rooms] == [("room\\u0000-1", "N\\u0000")]


async def test_a_run_refused_for_its_input_is_recorded_as_an_error_with_the_reason(pool, registry):
    refusal = UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
    service = service_with(pool, ScriptedSandbox(refusal))
    run = await a_run(registry)
    with pytest.raises(UnicodeEncodeError) as raised:
        await service.run(run)
    assert is_content_error(raised.value)
    await service.record_refused(run, raised.value)
    row = await recorded(pool, run)
    assert row["status"] == "error" and row["result"] is None
    assert row["error"]["message"].startswith("the run could not be carried out for its input")
    assert "UnicodeEncodeError" in row["error"]["message"]
    async with pool.acquire() as conn:
        assert not await executions.begin(conn, run, now=NOW)
