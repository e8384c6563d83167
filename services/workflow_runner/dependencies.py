"""What `RunnerService` depends on, as Protocols with their contracts.

The real adapters: `sandbox.Sandbox`, `executions.PostgresExecutions`,
`projection_store.PostgresProjection`, `bindings.Fetcher`. The fakes in
tests/support/runner_fakes.py pass the same contract suites
(tests/integration/test_runner_contracts.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from services.workflow_runner.projection import Change
from services.workflow_runner.projection_store import Row
from services.workflow_runner.sandbox import (
    Bindings,
    FetchRequest,
    FetchResponse,
    Language,
    RunOutcome,
    RunRequest,
)
from shared.messages import WorkflowRunRequested


class CodeSandbox(Protocol):
    """Runs one workflow version on one event, in isolation, its bindings scoped by the caller.

    Every failure of the workflow (an exception, a timeout, a crash, a cap) is an outcome,
    never raised; raises SandboxUnavailable only when nothing can run it now (retryable). A
    run whose host crashed is run again: its bindings may see both tries.
    """

    async def run(self, request: RunRequest, bindings: Bindings) -> RunOutcome: ...


@dataclass(frozen=True)
class Begun:
    """A run recorded `running`: its version's (code, language), None when that version no
    longer exists; and how many projection rows its own event wrote."""

    source: tuple[str, Language] | None
    projected: int


@dataclass(frozen=True)
class Ended:
    """How a run ended, as it is recorded (values Postgres can store)."""

    status: str
    started_at: datetime
    duration_ms: int
    result: Any
    error: dict[str, Any] | None
    logs: list[dict[str, Any]]
    # The code's fetches, in order (bindings.RoomBindings.fetches).
    fetches: list[dict[str, Any]] = field(default_factory=list)


class ExecutionStore(Protocol):
    """The execution log, one row per run id, and the code of each workflow version.

    At-least-once: `begin` takes a run again while it is left `running`, never once it is
    finished; `finish` writes the whole row whatever `begin` left (it need not be durable).
    """

    async def begin(
        self, run: WorkflowRunRequested, changes: Sequence[Change], *, now: datetime
    ) -> Begun | None:
        """Record the run `running` and project `changes` (its own event's) beside it, in one
        transaction; None when the run already finished. Changes refused for their content
        are left out (the projection consumer reports them)."""
        ...

    async def finish(self, run: WorkflowRunRequested, ended: Ended, *, now: datetime) -> None:
        """Record how the run ended. Raises a content error (shared.failures.is_content_error)
        when a value cannot be stored; then nothing of it is."""
        ...


class ProjectionStore(Protocol):
    """The room data the bindings read, written from room events and room-state records.

    Writes are idempotent (a batch read again writes the same rows). Every read is bounded to
    one organization and one room, lists to MAX_LIST rows, in key order.
    """

    async def write(self, rows: Sequence[Row], *, now: datetime) -> list[tuple[Row, Exception]]:
        """Write a batch (at most one row per key; `text` None deletes), in one transaction;
        when the batch is refused for its content, row by row. Returns the rows refused for
        their content, with why; any other failure (Postgres away) is raised."""
        ...

    async def room(self, org: str, room_id: str) -> dict[str, Any] | None: ...

    async def room_users(self, org: str, room_id: str) -> list[dict[str, Any]]: ...

    async def kv_get(self, org: str, room_id: str, store: str, key: str) -> Any: ...

    async def kv_all(self, org: str, room_id: str, store: str) -> dict[str, Any]: ...

    async def files(self, org: str, room_id: str) -> list[dict[str, Any]]:
        """Each file's metadata with its `path`."""
        ...


class Fetches(Protocol):
    """HTTP for workflows: absolute http(s) URLs only, bounded in time and size, redirects
    handed back as they are. Raises FetchRefused (with the reason the code sees) for a
    request it will not make or that failed; never anything else."""

    async def fetch(self, request: FetchRequest) -> FetchResponse: ...
