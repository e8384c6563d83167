"""In-memory fakes of what `RunnerService` depends on (services/workflow_runner/dependencies.py).

Each passes the same contract suite as the real adapter (tests/integration/
test_runner_contracts.py), so a unit test against them says what production would do.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from yarl import URL

from services.workflow_runner.dependencies import Begun, Ended
from services.workflow_runner.projection import Change
from services.workflow_runner.projection_store import MAX_LIST, Row, rows_of
from services.workflow_runner.sandbox import (
    Bindings,
    FetchRefused,
    FetchRequest,
    FetchResponse,
    Language,
    RunOutcome,
    RunRequest,
    SandboxUnavailable,
)
from services.workflow_runner.storable import storable_json
from shared.messages import WorkflowRunRequested

# A workflow as the fake sandbox runs it: (event, bindings) -> its return value.
Program = Callable[[dict[str, Any], Bindings], Awaitable[Any]]


class Thrown(Exception):
    """Raised by a Program as the code would `throw new Error(message)`."""


def content_refusal(value: Any) -> Exception | None:
    """What Postgres' jsonb refuses (NUL, a lone surrogate, NaN), as a content error."""
    if storable_json(value).cleaned:
        return UnicodeEncodeError("utf-8", "", 0, 1, "jsonb cannot store this value")
    return None


class FakeSandbox:
    """CodeSandbox: runs Programs by their code; unknown code is an error outcome, as code
    that does not load is. `unavailable` is raised by every run while it is set."""

    def __init__(self, programs: dict[str, Program] | None = None) -> None:
        self.programs = dict(programs or {})
        self.unavailable: BaseException | None = None
        self.runs: list[RunRequest] = []

    async def run(self, request: RunRequest, bindings: Bindings) -> RunOutcome:
        if self.unavailable is not None:
            raise self.unavailable
        self.runs.append(request)
        started_at = datetime.now(UTC)
        program = self.programs.get(request.code)
        if program is None:
            error = {"message": "SyntaxError: not a workflow the fake knows", "stack": None}
            return RunOutcome("error", started_at, 0, None, error, [], cold=True)
        try:
            result = await program(request.event, bindings)
        except Thrown as exc:
            error = {"message": str(exc), "stack": f"Error: {exc}\n    at workflow.js"}
            return RunOutcome("error", started_at, 0, None, error, [])
        return RunOutcome("success", started_at, 0, result, None, [])


def unavailable() -> SandboxUnavailable:
    return SandboxUnavailable("no host could be started")


@dataclass
class FakeProjection:
    """ProjectionStore in memory: rows by (table, key), their values as JSON reads them."""

    rows: dict[tuple[str, tuple[str, ...]], Any] = field(default_factory=dict)

    async def write(self, rows: Sequence[Row], *, now: datetime) -> list[tuple[Row, Exception]]:
        refused = []
        for row in rows:
            reason = _refusal(row)
            if reason is None:
                self._write(row)
            else:
                refused.append((row, reason))
        return refused

    def apply_all(self, changes: Sequence[Change]) -> int:
        """The changes' rows written all or none (a savepoint); how many were written."""
        rows = rows_of(changes).rows
        if any(_refusal(row) for row in rows):
            return 0
        for row in rows:
            self._write(row)
        return len(rows)

    def _write(self, row: Row) -> None:
        if row.text is None:
            self.rows.pop((row.table, row.key), None)
        else:
            self.rows[(row.table, row.key)] = json.loads(row.text)

    def _in_room(self, table: str, org: str, room_id: str) -> list[tuple[tuple[str, ...], Any]]:
        found = [(key, value) for (t, key), value in self.rows.items() if t == table]
        return sorted((key[2:], value) for key, value in found if key[:2] == (org, room_id))

    async def room(self, org: str, room_id: str) -> dict[str, Any] | None:
        return self.rows.get(("rooms", (org, room_id)))

    async def room_users(self, org: str, room_id: str) -> list[dict[str, Any]]:
        return [value for _, value in self._in_room("room_users", org, room_id)][:MAX_LIST]

    async def kv_get(self, org: str, room_id: str, store: str, key: str) -> Any:
        return self.rows.get(("kv_entries", (org, room_id, store, key)))

    async def kv_all(self, org: str, room_id: str, store: str) -> dict[str, Any]:
        entries = self._in_room("kv_entries", org, room_id)
        return dict([(key[1], value) for key, value in entries if key[0] == store][:MAX_LIST])

    async def files(self, org: str, room_id: str) -> list[dict[str, Any]]:
        entries = self._in_room("files", org, room_id)[:MAX_LIST]
        return [{"path": key[0], **metadata} for key, metadata in entries]


def _refusal(row: Row) -> Exception | None:
    """What jsonb refuses in a row's text (SQLSTATE 22P05 for a NUL): a row not made by
    rows_of may hold it."""
    return None if row.text is None else content_refusal(json.loads(row.text))


@dataclass
class FakeExecutions:
    """ExecutionStore in memory, its rows by (run id, created_at) as Postgres keys them. Its
    runs' events are projected into `projection`; a finish whose values jsonb would refuse is
    refused, as is any for which `refuses` says so."""

    projection: FakeProjection = field(default_factory=FakeProjection)
    versions: dict[tuple[str, int], tuple[str, Language]] = field(default_factory=dict)
    rows: dict[tuple[str, datetime], dict[str, Any]] = field(default_factory=dict)
    refuses: Callable[[Ended], bool] = lambda ended: False

    def add_version(self, workflow_id: str, version: int, code: str, language: Language) -> None:
        self.versions[(workflow_id, version)] = (code, language)

    async def begin(
        self, run: WorkflowRunRequested, changes: Sequence[Change], *, now: datetime
    ) -> Begun | None:
        row = self.rows.get(key_of(run))
        if row is not None and row["status"] != "running":
            return None
        self.rows[key_of(run)] = {"status": "running", "started_at": now}
        projected = self.projection.apply_all(changes)
        return Begun(self.versions.get((run.workflow_id, run.version)), projected)

    async def finish(self, run: WorkflowRunRequested, ended: Ended, *, now: datetime) -> None:
        refusal = content_refusal([ended.result, ended.error, ended.logs])
        if refusal is None and self.refuses(ended):
            refusal = UnicodeEncodeError("utf-8", "", 0, 1, "refused by the test")
        if refusal is not None:
            raise refusal
        self.rows[key_of(run)] = {
            "status": ended.status,
            "started_at": ended.started_at,
            "duration_ms": ended.duration_ms,
            "result": ended.result,
            "error": ended.error,
            "logs": ended.logs,
        }


def key_of(run: WorkflowRunRequested) -> tuple[str, datetime]:
    """An execution's key: its run id and its request's created_at (the partition key)."""
    return run.run_id, run.created_at


@dataclass
class FakeFetcher:
    """Fetches: answers from `answers` (URL -> response); anything else is refused, as an
    address the guard refuses is."""

    answers: dict[str, FetchResponse] = field(default_factory=dict)
    fetched: list[FetchRequest] = field(default_factory=list)

    async def fetch(self, request: FetchRequest) -> FetchResponse:
        try:
            target = URL(request.url)
        except ValueError as exc:
            raise FetchRefused(f"not a valid URL: {request.url[:200]!r}") from exc
        if target.scheme not in ("http", "https") or not target.host:
            raise FetchRefused(f"only absolute http(s) URLs can be fetched: {request.url!r}")
        answer = self.answers.get(request.url)
        if answer is None:
            raise FetchRefused(f"{request.url} is not reachable")
        self.fetched.append(request)
        return answer
