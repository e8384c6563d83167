"""One contract suite per Protocol of services/workflow_runner/dependencies.py, each run against
the fake (tests/support/runner_fakes.py) and the real adapter: Postgres on a database of the
test's own, Deno (a few cheap cases: its runs cost time), HTTP through the SSRF guard."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest

from services.workflow_runner.bindings import Fetcher
from services.workflow_runner.connection_shares import ConnectionShares
from services.workflow_runner.dependencies import (
    Begun,
    CodeSandbox,
    Ended,
    ExecutionStore,
    Fetches,
    ProjectionStore,
)
from services.workflow_runner.executions import PostgresExecutions
from services.workflow_runner.projection import PutRoom, PutUser
from services.workflow_runner.projection_store import PostgresProjection, Row
from services.workflow_runner.sandbox import (
    FetchRefused,
    FetchRequest,
    FetchResponse,
    Sandbox,
    SandboxSettings,
    SandboxUnavailable,
)
from shared.failures import is_content_error
from shared.messages import WorkflowRunRequested, run_id_for
from shared.ssrf import AddressPolicy
from tests.support.receiver import Receiver, Script
from tests.support.runner_fakes import (
    FakeExecutions,
    FakeFetcher,
    FakeProjection,
    FakeSandbox,
    Thrown,
    unavailable,
)
from tests.support.sandbox import MemoryBindings, request

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
ORG, OTHER = "org-a", "org-b"
CODE = "export default async () => 1;"

# --- ProjectionStore


@pytest.fixture(params=["fake", "postgres"])
def projection(request: pytest.FixtureRequest) -> ProjectionStore:
    if request.param == "fake":
        return FakeProjection()
    pool: asyncpg.Pool = request.getfixturevalue("pool")
    return PostgresProjection(pool, ConnectionShares(pool, per_organization=2))


def row(table: str, key: tuple[str, ...], text: str | None) -> Row:
    return Row(table, key, text)


async def test_projection_reads_what_was_written_in_key_order(projection: ProjectionStore):
    refused = await projection.write(
        [
            row("rooms", (ORG, "r1"), '{"id": "r1", "name": "Design"}'),
            row("room_users", (ORG, "r1", "u2"), '{"id": "u2"}'),
            row("room_users", (ORG, "r1", "u1"), '{"id": "u1"}'),
            row("kv_entries", (ORG, "r1", "notes", "b"), "[1, 2]"),
            row("kv_entries", (ORG, "r1", "notes", "a"), "false"),
            row("kv_entries", (ORG, "r1", "other", "c"), "3"),
            row("files", (ORG, "r1", "a.txt"), '{"size": 2}'),
        ],
        now=NOW,
    )
    assert refused == []
    assert await projection.room(ORG, "r1") == {"id": "r1", "name": "Design"}
    assert await projection.room_users(ORG, "r1") == [{"id": "u1"}, {"id": "u2"}]
    assert await projection.kv_get(ORG, "r1", "notes", "b") == [1, 2]
    assert await projection.kv_all(ORG, "r1", "notes") == {"a": False, "b": [1, 2]}
    assert await projection.files(ORG, "r1") == [{"path": "a.txt", "size": 2}]


async def test_projection_reads_only_the_named_organization_and_room(projection):
    await projection.write(
        [
            row("rooms", (OTHER, "r1"), '{"id": "r1"}'),
            row("room_users", (ORG, "r2", "u1"), '{"id": "u1"}'),
            row("kv_entries", (OTHER, "r1", "notes", "a"), "1"),
        ],
        now=NOW,
    )
    assert await projection.room(ORG, "r1") is None
    assert await projection.room_users(ORG, "r1") == []
    assert await projection.kv_get(ORG, "r1", "notes", "a") is None
    assert await projection.kv_all(ORG, "r1", "notes") == {}
    assert await projection.files(ORG, "r1") == []


async def test_projection_deletes_only_the_rows_named(projection: ProjectionStore):
    users = [row("room_users", (org, "r1", "u1"), '{"id": "u1"}') for org in (ORG, OTHER)]
    await projection.write(users, now=NOW)
    await projection.write([row("room_users", (ORG, "r1", "u1"), None)], now=NOW)
    assert await projection.room_users(ORG, "r1") == []
    assert await projection.room_users(OTHER, "r1") == [{"id": "u1"}]


async def test_projection_leaves_out_only_the_rows_refused_for_their_content(projection):
    poison = row("room_users", (ORG, "r1", "u2"), '{"name": "x\\u0000"}')
    good = [row("room_users", (ORG, "r1", u), f'{{"id": "{u}"}}') for u in ("u1", "u3")]
    refused = await projection.write([good[0], poison, good[1]], now=NOW)
    assert [r for r, _ in refused] == [poison]
    assert all(is_content_error(exc) for _, exc in refused)
    assert await projection.room_users(ORG, "r1") == [{"id": "u1"}, {"id": "u3"}]


# --- ExecutionStore


@dataclass
class Log:
    executions: ExecutionStore
    projection: ProjectionStore
    versions: Any  # adds a workflow version: (workflow_id, version, code) -> None


@pytest.fixture(params=["fake", "postgres"])
def log(request: pytest.FixtureRequest) -> Log:
    if request.param == "fake":
        fake = FakeExecutions()

        async def add_fake(workflow_id: str, version: int, code: str) -> None:
            fake.add_version(workflow_id, version, code, "js")

        return Log(fake, fake.projection, add_fake)
    pool: asyncpg.Pool = request.getfixturevalue("pool")
    shares = ConnectionShares(pool, per_organization=2)

    async def add_real(workflow_id: str, version: int, code: str) -> None:
        await add_version(pool, workflow_id, version, code)

    return Log(PostgresExecutions(shares), PostgresProjection(pool, shares), add_real)


async def add_version(pool: asyncpg.Pool, workflow_id: str, version: int, code: str) -> None:
    """The registry's rows a version needs (the registry owns them; here only read)."""
    org = uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("INSERT INTO registry.accounts (id, name) VALUES ($1, 'a')", org)
        await conn.execute(
            "INSERT INTO registry.workflows (id, organization_id, name, events, language,"
            " version, created_at, updated_at) VALUES ($1, $2, 'w', '{}', 'js', $3, $4, $4)",
            uuid.UUID(workflow_id), org, version, NOW,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO registry.workflow_versions (workflow_id, version, language, code,"
            " created_at) VALUES ($1, $2, 'js', $3, $4)",
            uuid.UUID(workflow_id), version, code, NOW,
        )  # fmt: skip


def a_run(workflow_id: str | None = None, *, room: dict[str, Any] | None = None):
    workflow_id = workflow_id or str(uuid.uuid4())
    event_id = f"evt-{uuid.uuid4().hex[:8]}"
    organization_id = str(uuid.uuid4())
    event = {"event": "session.started", "organization_id": organization_id}
    return WorkflowRunRequested(
        run_id=run_id_for(workflow_id, event_id),
        workflow_id=workflow_id,
        version=1,
        organization_id=organization_id,
        room_id=None if room is None else room["id"],
        event_id=event_id,
        event=event if room is None else event | {"room": room},
        created_at=NOW,
    )


def ended(status: str = "success", result: Any = None) -> Ended:
    return Ended(status, NOW, 12, result, None, [{"level": "log", "message": "hi"}])


async def test_a_run_is_begun_again_while_running_and_never_once_finished(log: Log):
    run = a_run()
    assert await log.executions.begin(run, [], now=NOW) is not None
    assert await log.executions.begin(run, [], now=NOW) is not None  # left running
    await log.executions.finish(run, ended(), now=NOW)
    assert await log.executions.begin(run, [], now=NOW) is None


async def test_a_finish_without_its_running_row_records_the_run(log: Log):
    run = a_run()
    await log.executions.finish(run, ended("timeout"), now=NOW)  # as after a Postgres crash
    assert await log.executions.begin(run, [], now=NOW) is None


async def test_a_run_is_one_execution_per_request_stamp(log: Log):
    """The key holds the request's created_at (the table's partition key): fanout stamps a
    re-read event's requests the same, so a request read again finds its execution."""
    run = a_run()
    await log.executions.finish(run, ended(), now=NOW)
    assert await log.executions.begin(run.model_copy(), [], now=NOW) is None
    restamped = run.model_copy(update={"created_at": NOW + timedelta(days=1)})
    assert await log.executions.begin(restamped, [], now=NOW) is not None


async def test_begin_gives_the_versions_code_or_none_when_it_is_gone(log: Log):
    known, gone = a_run(), a_run()
    await log.versions(known.workflow_id, 1, CODE)
    assert await log.executions.begin(known, [], now=NOW) == Begun(source=(CODE, "js"), projected=0)
    assert (await log.executions.begin(gone, [], now=NOW)).source is None


async def test_begin_projects_the_runs_own_event(log: Log):
    run = a_run(room={"id": "r1", "name": "Design"})
    org = run.organization_id
    changes = [PutRoom(org, "r1", {"id": "r1", "name": "Design"}), PutUser(org, "r1", "u1", {})]
    begun = await log.executions.begin(run, changes, now=NOW)
    assert begun is not None and begun.projected == 2
    assert await log.projection.room(org, "r1") == {"id": "r1", "name": "Design"}
    assert await log.projection.room_users(org, "r1") == [{}]


async def test_a_finish_refused_for_its_content_records_nothing(log: Log):
    run = a_run()
    await log.executions.begin(run, [], now=NOW)
    with pytest.raises(Exception) as refused:
        await log.executions.finish(run, ended(result={"k": "x\x00"}), now=NOW)
    assert is_content_error(refused.value)
    assert await log.executions.begin(run, [], now=NOW) is not None  # still running


# --- CodeSandbox (real Deno: a few cheap cases)

RETURNS = "export default async () => ({ ok: true });"
READS_ROOM = "export default async (event, { room }) => (await room.get()).name;"
THROWS = "export default async () => { throw new Error('room is locked'); };"


async def _returns(event: dict, bindings: Any) -> Any:
    return {"ok": True}


async def _reads_room(event: dict, bindings: Any) -> Any:
    return (await bindings.call("room.get", []))["name"]


async def _throws(event: dict, bindings: Any) -> Any:
    raise Thrown("room is locked")


@pytest.fixture(scope="module")
async def deno() -> AsyncIterator[Sandbox]:
    sandbox = Sandbox(SandboxSettings(max_hosts=1, wall_timeout_s=5.0))
    await sandbox.start()
    yield sandbox
    await sandbox.close()


@pytest.fixture(params=["fake", "deno"])
def sandbox(request: pytest.FixtureRequest) -> CodeSandbox:
    if request.param == "fake":
        return FakeSandbox({RETURNS: _returns, READS_ROOM: _reads_room, THROWS: _throws})
    return request.getfixturevalue("deno")


async def test_sandbox_gives_back_what_the_workflow_returns(sandbox: CodeSandbox):
    outcome = await sandbox.run(request(RETURNS, workflow="wf-c1", run="c1"), MemoryBindings())
    assert (outcome.status, outcome.result, outcome.error) == ("success", {"ok": True}, None)
    assert outcome.started_at.tzinfo is not None and outcome.duration_ms >= 0


async def test_sandbox_answers_binding_calls_from_the_runs_bindings(sandbox: CodeSandbox):
    bindings = MemoryBindings()
    outcome = await sandbox.run(request(READS_ROOM, workflow="wf-c2", run="c2"), bindings)
    assert (outcome.status, outcome.result) == ("success", "Design Review")
    assert bindings.calls == [("room.get", [])]


async def test_sandbox_gives_a_thrown_error_as_an_outcome(sandbox: CodeSandbox):
    outcome = await sandbox.run(request(THROWS, workflow="wf-c3", run="c3"), MemoryBindings())
    assert (outcome.status, outcome.result) == ("error", None)
    assert outcome.error is not None and outcome.error["message"] == "room is locked"


@pytest.mark.parametrize("kind", ["fake", "deno"])
async def test_a_sandbox_that_cannot_run_raises_sandbox_unavailable(kind: str):
    if kind == "fake":
        sandbox: CodeSandbox = FakeSandbox({RETURNS: _returns})
        sandbox.unavailable = unavailable()
    else:
        sandbox = Sandbox(SandboxSettings())  # never started
    with pytest.raises(SandboxUnavailable):
        await sandbox.run(request(RETURNS, workflow="wf-c4", run="c4"), MemoryBindings())


# --- Fetches


@pytest.fixture(params=["fake", "guarded"])
async def fetches(
    request: pytest.FixtureRequest, receiver: Receiver
) -> AsyncIterator[tuple[Fetches, str]]:
    """A fetcher, and a URL of the receiver it may fetch (answering 201 "made")."""
    url = receiver.script("/hook", Script(statuses=[201], body=b"made"))
    if request.param == "fake":
        yield FakeFetcher({url: FetchResponse(201, {}, b"made")}), url
        return
    policy = AddressPolicy(allow_loopback=True)
    async with aiohttp.ClientSession() as session:
        yield Fetcher(session, policy=policy, timeout_s=5, max_bytes=1024), url


async def test_fetch_gives_back_the_status_and_body(fetches: tuple[Fetches, str]):
    fetcher, url = fetches
    response = await fetcher.fetch(FetchRequest(url, method="POST", body=b"{}"))
    assert (response.status, response.body) == (201, b"made")


@pytest.mark.parametrize("url", ["ftp://example.com/x", "/relative", "http://10.0.0.1/"])
async def test_fetch_refuses_what_it_will_not_reach(fetches: tuple[Fetches, str], url: str):
    fetcher, _ = fetches
    with pytest.raises(FetchRefused):
        await fetcher.fetch(FetchRequest(url))
