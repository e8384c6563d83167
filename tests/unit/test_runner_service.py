"""RunnerService against the fakes of its Protocols (tests/support/runner_fakes.py): what a run
gives back is recorded once, failures for the world's sake are raised to be retried, failures
for the run's own input are recorded as errors with the reason."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from services.workflow_runner.projection import PutKv, PutRoom
from services.workflow_runner.projection_store import MAX_VALUE_BYTES
from services.workflow_runner.sandbox import Bindings, SandboxUnavailable
from services.workflow_runner.service import RunnerMetrics, RunnerService
from shared.failures import is_content_error
from shared.messages import WorkflowRunRequested, run_id_for
from tests.support.runner_fakes import (
    FakeExecutions,
    FakeFetcher,
    FakeSandbox,
    Program,
    Thrown,
    key_of,
    unavailable,
)

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
ORG = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
ROOM = {"id": "room-1", "name": "Design"}


class Runner:
    """The service, its fakes and its metrics."""

    def __init__(self, program: Program | None = None, **executions: Any) -> None:
        self.registry = CollectorRegistry()
        self.executions = FakeExecutions(**executions)
        self.projection = self.executions.projection
        self.sandbox = FakeSandbox({"code": program} if program else {})
        self.service = RunnerService(
            executions=self.executions,
            projection=self.projection,
            sandbox=self.sandbox,
            fetcher=FakeFetcher(),
            clock=lambda: NOW,
            metrics=RunnerMetrics(self.registry),
        )

    def a_run(self, *, known: bool = True) -> WorkflowRunRequested:
        workflow_id, event_id = str(uuid.uuid4()), f"evt-{uuid.uuid4().hex[:8]}"
        if known:
            self.executions.add_version(workflow_id, 1, "code", "js")
        return WorkflowRunRequested(
            run_id=run_id_for(workflow_id, event_id),
            workflow_id=workflow_id,
            version=1,
            organization_id=ORG,
            room_id=ROOM["id"],
            event_id=event_id,
            event={"event": "session.started", "organization_id": ORG, "room": ROOM},
            created_at=NOW,
        )

    def recorded(self, run: WorkflowRunRequested) -> dict[str, Any]:
        return self.executions.rows[key_of(run)]

    def count(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


def returning(value: Any) -> Program:
    async def program(event: dict, bindings: Bindings) -> Any:
        return value

    return program


async def test_a_run_is_recorded_with_what_the_workflow_returned() -> None:
    runner = Runner(returning({"ok": True}))
    run = runner.a_run()
    assert await runner.service.run(run) == "success"
    assert runner.recorded(run) | {"started_at": None} == {
        "status": "success", "started_at": None, "duration_ms": 0, "result": {"ok": True},
        "error": None, "logs": [],
    }  # fmt: skip
    assert runner.count("roomhooks_workflow_executions_total", status="success") == 1


async def test_a_run_read_again_once_recorded_is_not_run_again() -> None:
    runner = Runner(returning(1))
    run = runner.a_run()
    assert await runner.service.run(run) == "success"
    assert await runner.service.run(run) is None
    assert len(runner.sandbox.runs) == 1


async def test_the_runs_own_event_is_projected_before_its_code_reads_the_room() -> None:
    async def reads_room(event: dict, bindings: Bindings) -> Any:
        return (await bindings.call("room.get", []))["name"]

    runner = Runner(reads_room)
    run = runner.a_run()
    assert await runner.service.run(run) == "success"
    assert runner.recorded(run)["result"] == "Design"
    assert runner.count("roomhooks_workflow_projection_changes_total") == 1


async def test_a_version_that_no_longer_exists_is_recorded_as_an_error_without_a_run() -> None:
    runner = Runner(returning(1))
    run = runner.a_run(known=False)
    assert await runner.service.run(run) == "error"
    assert runner.recorded(run)["error"]["message"] == "this workflow version no longer exists"
    assert runner.sandbox.runs == []


async def test_a_thrown_error_is_recorded_as_the_runs_error() -> None:
    async def throws(event: dict, bindings: Bindings) -> Any:
        raise Thrown("room is locked")

    runner = Runner(throws)
    run = runner.a_run()
    assert await runner.service.run(run) == "error"
    assert runner.recorded(run)["error"]["message"] == "room is locked"


async def test_no_sandbox_is_raised_for_a_retry_and_the_run_stays_running() -> None:
    runner = Runner(returning(1))
    run = runner.a_run()
    runner.sandbox.unavailable = unavailable()
    with pytest.raises(SandboxUnavailable) as raised:
        await runner.service.run(run)
    assert not is_content_error(raised.value)
    assert runner.recorded(run)["status"] == "running"
    runner.sandbox.unavailable = None
    assert await runner.service.run(run) == "success"  # tried again: begun again


async def test_a_run_refused_for_its_input_is_recorded_as_an_error_with_the_reason() -> None:
    runner = Runner(returning(1))
    run = runner.a_run()
    runner.sandbox.unavailable = UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates")
    with pytest.raises(UnicodeEncodeError) as raised:
        await runner.service.run(run)
    assert is_content_error(raised.value)
    await runner.service.record_refused(run, raised.value)
    error = runner.recorded(run)["error"]["message"]
    assert error.startswith("the run could not be carried out for its input: UnicodeEncodeError")
    assert runner.count("roomhooks_poison_inputs_total", service="workflow_runner",
                        kind="run_input") == 1  # fmt: skip
    assert await runner.service.run(run) is None  # never run again


async def test_an_outcome_with_nul_and_lone_surrogates_is_recorded_escaped() -> None:
    runner = Runner(returning({"k\x00": "x\x00y", "s": "bad\ud800"}))
    run = runner.a_run()
    assert await runner.service.run(run) == "success"
    assert runner.recorded(run)["result"] == {"k\\u0000": "x\\u0000y", "s": "bad\\ud800"}


async def test_an_outcome_still_refused_is_recorded_as_an_error_saying_so() -> None:
    runner = Runner(returning(1), refuses=lambda ended: ended.status == "success")
    run = runner.a_run()
    assert await runner.service.run(run) == "success"  # what the workflow did
    recorded = runner.recorded(run)
    assert (recorded["status"], recorded["result"], recorded["logs"]) == ("error", None, [])
    message = recorded["error"]["message"]
    assert message.startswith("the run's outcome (success) could not be stored")
    assert runner.count("roomhooks_poison_inputs_total", service="workflow_runner",
                        kind="run_outcome") == 1  # fmt: skip


async def test_a_projected_value_too_large_is_passed_over_and_the_rest_written() -> None:
    runner = Runner()
    too_large = "x" * (MAX_VALUE_BYTES + 1)
    await runner.service.project(
        [PutRoom(ORG, "r1", {"id": "r1"}), PutKv(ORG, "r1", "s", "big", too_large)]
    )
    assert await runner.projection.room(ORG, "r1") == {"id": "r1"}
    assert await runner.projection.kv_get(ORG, "r1", "s", "big") is None
    assert runner.count("roomhooks_workflow_projection_changes_total") == 1
    assert runner.count("roomhooks_poison_inputs_total", service="workflow_runner",
                        kind="projection_value") == 1  # fmt: skip
