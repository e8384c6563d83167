"""Runner use cases: project room data, run a workflow version, record the execution.

At-least-once: a run is recorded `running` (idempotent on its run id) before it starts, without
waiting for that row's flush, and finished after, durably; the consumer commits a partition's
offset only up to its lowest run not yet recorded (flow.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg
import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram

from services.workflow_runner import executions, projection_store
from services.workflow_runner.bindings import Fetcher, RoomBindings
from services.workflow_runner.connection_shares import ConnectionShares
from services.workflow_runner.projection import Change, changes_from_event
from services.workflow_runner.sandbox import RunOutcome, RunRequest, Sandbox
from shared.messages import WorkflowRunRequested

log = structlog.get_logger(__name__)


class RunnerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.executions = Counter(
            "roomhooks_workflow_executions_total",
            "Executions finished, by status.",
            ["status"],
            registry=registry,
        )
        self.duration = Histogram(
            "roomhooks_workflow_execution_seconds", "Execution wall time.", registry=registry
        )
        self.projected = Counter(
            "roomhooks_workflow_projection_changes_total",
            "Changes applied to the bindings' projection.",
            registry=registry,
        )


class RunnerService:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        shares: ConnectionShares,
        sandbox: Sandbox,
        fetcher: Fetcher,
        clock: Callable[[], datetime],
        metrics: RunnerMetrics,
    ) -> None:
        self._pool = pool  # the projection consumer's; runs take theirs through `shares`
        self._shares = shares
        self._sandbox = sandbox
        self._fetcher = fetcher
        self._clock = clock
        self._metrics = metrics

    async def project(self, changes: list[Change]) -> None:
        if not changes:
            return
        async with self._pool.acquire() as conn, conn.transaction():
            await self._apply(conn, changes)

    async def _apply(self, conn: asyncpg.Connection, changes: list[Change]) -> None:
        if changes:
            await projection_store.apply(conn, changes, now=self._clock())
            self._metrics.projected.inc(len(changes))

    async def run(self, request: WorkflowRunRequested) -> str | None:
        """Run once and record it; returns the status, or None when it had already run."""
        bound = log.bind(run_id=request.run_id, workflow_id=request.workflow_id,
                         version=request.version)  # fmt: skip
        async with self._shares.acquire(request.organization_id) as conn, conn.transaction():
            # What this transaction writes need not be durable, so its commit does not wait
            # for the WAL flush (an fsync: 50-250 ms at times in `make chaos` scenario 10,
            # before the code could start): `finish` writes the whole row, whether or not the
            # `running` one survived a Postgres crash, and the event's room and user reach the
            # projection through its own consumer too.
            await conn.execute("SET LOCAL synchronous_commit TO OFF")
            if not await executions.begin(conn, request, now=self._clock()):
                bound.info("workflow.run_skipped", reason="already ran")
                return None
            source = await executions.code_of(conn, request.workflow_id, request.version)
            # The run's own event first: its room and user are there even if the projection
            # consumer has not reached this event yet.
            await self._apply(conn, changes_from_event(request.event))
        if source is None:
            outcome = self._failed("this workflow version no longer exists")
            await self._finish(request, outcome, [])
            return outcome.status
        code, language = source
        bindings = RoomBindings(
            self._shares,
            self._fetcher,
            organization_id=request.organization_id,
            room_id=request.room_id,
        )
        outcome = await self._sandbox.run(
            RunRequest(
                run_id=request.run_id,
                workflow_id=request.workflow_id,
                version=request.version,
                code=code,
                language=language,
                event=request.event,
                organization_id=request.organization_id,
            ),
            bindings,
        )
        await self._finish(request, outcome, bindings.fetch_log)
        self._metrics.executions.labels(outcome.status).inc()
        self._metrics.duration.observe(outcome.duration_ms / 1000)
        bound.info("workflow.ran", status=outcome.status, duration_ms=outcome.duration_ms)
        return outcome.status

    def _failed(self, message: str) -> RunOutcome:
        return RunOutcome(
            status="error",
            started_at=self._clock(),
            duration_ms=0,
            result=None,
            error={"message": message, "stack": None},
            logs=[],
        )

    async def _finish(
        self, request: WorkflowRunRequested, outcome: RunOutcome, fetch_log: list[dict[str, Any]]
    ) -> None:
        async with self._shares.acquire(request.organization_id) as conn:
            await executions.finish(
                conn,
                request,
                status=outcome.status,
                started_at=outcome.started_at,
                duration_ms=outcome.duration_ms,
                result=outcome.result,
                error=outcome.error,
                logs=[*outcome.logs, *fetch_log],
                now=self._clock(),
            )
