"""Runner use cases: project room data, run a workflow version, record the execution.

At-least-once: a run is recorded `running` (idempotent on its run id) before it starts, without
waiting for that row's flush, and finished after, durably; the consumer commits a partition's
offset only up to its lowest run not yet recorded (flow.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import structlog
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, StatusCode
from prometheus_client import CollectorRegistry, Counter, Histogram

from services.workflow_runner import projection_store
from services.workflow_runner.bindings import RoomBindings
from services.workflow_runner.dependencies import (
    CodeSandbox,
    Ended,
    ExecutionStore,
    Fetches,
    ProjectionStore,
)
from services.workflow_runner.projection import Change, changes_from_event
from services.workflow_runner.sandbox import RunOutcome, RunRequest
from services.workflow_runner.storable import storable_value
from shared.failures import PoisonCounter, describe, is_content_error, storable_text
from shared.messages import WorkflowRunRequested
from shared.tracing import NO_TRACING, Tracing

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
        self.poison = PoisonCounter(registry, service="workflow_runner")


class RunnerService:
    """Projects room data for the bindings; runs a workflow version once per run id and
    records how it ended. A failure for the world's sake (Postgres away, no sandbox host) is
    raised for the caller to retry: every step is idempotent."""

    def __init__(
        self,
        *,
        executions: ExecutionStore,
        projection: ProjectionStore,
        sandbox: CodeSandbox,
        fetcher: Fetches,
        clock: Callable[[], datetime],
        metrics: RunnerMetrics,
        tracing: Tracing = NO_TRACING,
    ) -> None:
        """With `tracing` on, each run is a span (under its request's trace) whose binding
        calls and fetches are its children."""
        self._tracing = tracing
        self._executions = executions
        self._projection = projection
        self._sandbox = sandbox
        self._fetcher = fetcher
        self._clock = clock
        self._metrics = metrics

    async def project(self, changes: list[Change]) -> None:
        """Apply a batch of changes. A value Postgres cannot take as it is is stored cleaned,
        one too large is passed over (logged, counted); when the batch still fails on its
        content it is written row by row and only the refused rows are left out. Anything
        else (Postgres away) is raised: the caller retries the batch, idempotently."""
        if not changes:
            return
        rows = projection_store.rows_of(changes)
        refused = await self._projection.write(rows.rows, now=self._clock())
        self._metrics.projected.inc(len(rows.rows) - len(refused))
        self._report(rows, refused)

    def _report(
        self,
        rows: projection_store.Rows,
        refused: list[tuple[projection_store.Row, Exception]],
    ) -> None:
        """Log once what a written batch cleaned or left out, and count what it left out."""
        for row, reason in rows.cleaned:
            log.info("workflows.projection_cleaned", table=row.table, key=_shown(row.key),
                     reason=reason)  # fmt: skip
        for table, key, reason in rows.skipped:
            log.warning("workflows.projection_skipped", table=table, key=_shown(key), reason=reason)
            self._metrics.poison.inc("projection_value")
        for row, exc in refused:
            log.warning("workflows.projection_skipped", table=row.table, key=_shown(row.key),
                        reason=describe(exc))  # fmt: skip
            self._metrics.poison.inc("projection_row")

    async def run(self, request: WorkflowRunRequested, parent: Context | None = None) -> str | None:
        """Run once and record it; returns the status, or None when it had already run.
        `parent`: the trace of its request (tracing on), the run's span its child."""
        if not self._tracing.enabled:
            return await self._run(request, None)
        span = self._tracing.start(
            "workflow run",
            parent=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "roomhooks.run_id": request.run_id,
                "roomhooks.workflow_id": request.workflow_id,
                "roomhooks.workflow_version": request.version,
                "roomhooks.event_id": request.event_id,
            },
        )
        try:
            status = await self._run(request, span)
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(StatusCode.ERROR, type(exc).__name__)
            raise
        else:
            span.set_attribute("roomhooks.status", status or "already_ran")
            if status not in (None, "success"):
                span.set_status(StatusCode.ERROR, status)
        finally:
            span.end()
        return status

    async def _run(self, request: WorkflowRunRequested, span: Span | None) -> str | None:
        bound = log.bind(run_id=request.run_id, workflow_id=request.workflow_id,
                         version=request.version)  # fmt: skip
        # The run's own event first: its room and user are there even if the projection
        # consumer has not reached this event yet.
        changes = changes_from_event(request.event)
        begun = await self._executions.begin(request, changes, now=self._clock())
        if begun is None:
            bound.info("workflow.run_skipped", reason="already ran")
            return None
        self._metrics.projected.inc(begun.projected)
        if begun.source is None:
            outcome = self._failed("this workflow version no longer exists")
            await self._finish(request, outcome, [], [])
            return outcome.status
        code, language = begun.source
        bindings = RoomBindings(
            self._projection,
            self._fetcher,
            organization_id=request.organization_id,
            # as the projection stores it: NUL and lone surrogates escaped
            room_id=None if request.room_id is None else storable_text(request.room_id),
            tracing=self._tracing if span is not None else NO_TRACING,
            span=span,
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
        await self._finish(request, outcome, bindings.fetch_log, bindings.fetches)
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

    async def record_refused(self, request: WorkflowRunRequested, exc: BaseException) -> None:
        """A run that failed for its own input (its event cannot be passed to the sandbox, a
        value Postgres refuses): recorded as an error with the reason, never tried again."""
        reason = describe(exc)
        log.warning("workflow.run_refused", run_id=request.run_id, reason=reason)
        self._metrics.poison.inc("run_input")
        outcome = self._failed(f"the run could not be carried out for its input: {reason}")
        await self._finish(request, outcome, [], [])
        self._metrics.executions.labels(outcome.status).inc()

    async def _finish(
        self,
        request: WorkflowRunRequested,
        outcome: RunOutcome,
        fetch_log: list[dict[str, Any]],
        fetches: list[dict[str, Any]],
    ) -> None:
        """Record the outcome, cleaned where Postgres could not take it as it is (NUL, lone
        surrogates: storable.py); should Postgres still refuse it, the run is recorded as an
        error saying so. Its final status is written once either way, and the run is never
        run again for what it returned or logged."""
        result, result_cleaned = storable_value(outcome.result)
        error, error_cleaned = storable_value(outcome.error)
        logs, logs_cleaned = storable_value([*outcome.logs, *fetch_log])
        fetched, fetches_cleaned = storable_value(fetches)
        if cleaned := sorted({*result_cleaned, *error_cleaned, *logs_cleaned, *fetches_cleaned}):
            log.info("workflow.outcome_cleaned", run_id=request.run_id, reason=", ".join(cleaned))
        ended = Ended(
            outcome.status, outcome.started_at, outcome.duration_ms, result, error, logs, fetched
        )
        try:
            await self._executions.finish(request, ended, now=self._clock())
        except Exception as exc:
            if not is_content_error(exc):
                raise
            reason = describe(exc)
            log.warning("workflow.outcome_refused", run_id=request.run_id, reason=reason)
            self._metrics.poison.inc("run_outcome")
            message = f"the run's outcome ({outcome.status}) could not be stored: {reason}"
            error = {"message": message, "stack": None}
            ended = replace(ended, status="error", result=None, error=error, logs=[], fetches=[])
            await self._executions.finish(request, ended, now=self._clock())


def _shown(key: tuple[str, ...]) -> list[str]:
    """A row's key for a log line: bounded, as ids come from tenants."""
    return [part[:80] for part in key]
