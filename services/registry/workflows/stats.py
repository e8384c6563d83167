"""A workflow's executions over a window as the API answers them: counts per status and the
p95 duration, per bucket and over the window. Pure: rows in, answer out.

The windows and their buckets are the webhook stats' (`deliveries/stats.py`): one API, one
way to ask for a chart. Buckets go by the execution's `created_at` (its event's stamp, the
executions' partition key), so the read is the window's days only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, Field, field_serializer

from services.registry.deliveries.stats import WINDOWS, Window, window_start
from shared.events import format_timestamp


@dataclass(frozen=True)
class ExecutionCounts:
    """One bucket's executions (`start` None: the whole window), as the statement sums them."""

    start: datetime | None
    running: int
    success: int
    error: int
    timeout: int
    duration_p95_ms: int | None


class StatusCounts(BaseModel):
    running: int = Field(description="Recorded as started and not finished (yet).")
    success: int
    error: int = Field(description="The code threw, or its result could not be kept.")
    timeout: int = Field(description="Stopped at the time limit.")


class ExecutionBucket(BaseModel):
    start: datetime
    executions: int
    statuses: StatusCounts
    duration_p95_ms: int | None = Field(
        description="The 95th percentile of the finished executions' durations; null: none."
    )

    @field_serializer("start", when_used="json")
    def _start(self, value: datetime) -> str:
        return format_timestamp(value)


class WorkflowStats(BaseModel):
    """A workflow's executions over a window (the current minute or hour included), by the
    time of the event each ran on."""

    workflow_id: str
    window: Window
    since: datetime = Field(description="The start of the window's first bucket.")
    executions: int
    statuses: StatusCounts
    duration_p95_ms: int | None = Field(
        description="The 95th percentile of the window's finished executions' durations (ms)."
    )
    buckets: list[ExecutionBucket] = Field(
        description="Oldest first, one per minute (1h) or hour, empty ones included."
    )

    @field_serializer("since", when_used="json")
    def _since(self, value: datetime) -> str:
        return format_timestamp(value)


class WorkflowStatsData(BaseModel):
    stats: WorkflowStats


def summarise(
    workflow_id: str, window: str, rows: Sequence[ExecutionCounts], *, now: datetime
) -> WorkflowStats:
    """The answer for `window` from the statement's rows: one per bucket that has executions,
    and the window's total (`start` None; absent without any)."""
    period_s, since = window_start(window, now)
    total = next((r for r in rows if r.start is None), None)
    stored = {r.start: r for r in rows if r.start is not None}
    starts = (since + timedelta(seconds=period_s * i) for i in range(WINDOWS[window][1]))
    return WorkflowStats(
        workflow_id=workflow_id,
        window=window,  # type: ignore[arg-type]
        since=since,
        executions=_count(total),
        statuses=_statuses(total),
        duration_p95_ms=total.duration_p95_ms if total is not None else None,
        buckets=[_bucket(start, stored.get(start)) for start in starts],
    )


def _count(row: ExecutionCounts | None) -> int:
    return 0 if row is None else row.running + row.success + row.error + row.timeout


def _statuses(row: ExecutionCounts | None) -> StatusCounts:
    if row is None:
        return StatusCounts(running=0, success=0, error=0, timeout=0)
    return StatusCounts(
        running=row.running, success=row.success, error=row.error, timeout=row.timeout
    )


def _bucket(start: datetime, row: ExecutionCounts | None) -> ExecutionBucket:
    return ExecutionBucket(
        start=start,
        executions=_count(row),
        statuses=_statuses(row),
        duration_p95_ms=row.duration_p95_ms if row is not None else None,
    )
