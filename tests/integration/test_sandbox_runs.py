"""The Deno sandbox with real Deno: the CollabKit webhooks guide's workflows as written, TypeScript,
warm Workers, versions, errors, results that are not JSON, and that the code check never runs
the code."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from services.workflow_runner.sandbox import CodeError, Sandbox, SandboxSettings
from tests.support.sandbox import (
    LOG_NEW_PARTICIPANTS,
    NOTIFY_SLACK,
    ORGANIZATION,
    ROOM,
    WELCOME_STORE_ENTRY,
    MemoryBindings,
    event,
    request,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def sandbox() -> AsyncIterator[Sandbox]:
    sandbox = Sandbox(SandboxSettings(max_hosts=2, wall_timeout_s=2.0))
    await sandbox.start()
    yield sandbox
    await sandbox.close()


async def test_log_new_participants_logs_the_room_name_and_returns_logged(sandbox: Sandbox):
    bindings = MemoryBindings()
    outcome = await sandbox.run(
        request(LOG_NEW_PARTICIPANTS, workflow="wf-log", run="r1"), bindings
    )
    assert outcome.status == "success", outcome.error
    assert outcome.result == {"logged": True}
    assert outcome.logs == [
        {"level": "log", "message": f"[participant.joined] User user-001 in room {ROOM['name']}"}
    ]
    assert bindings.calls == [("room.get", [])]
    assert outcome.error is None and outcome.duration_ms >= 0 and outcome.started_at.tzinfo


async def test_notify_slack_posts_the_json_body_through_bindings_fetch(sandbox: Sandbox):
    bindings = MemoryBindings()
    outcome = await sandbox.run(
        request(NOTIFY_SLACK, workflow="wf-slack", run="r2", payload=event("session.started")),
        bindings,
    )
    assert outcome.status == "success", outcome.error
    assert outcome.result == {"notified": True}
    [sent] = bindings.fetches
    assert (sent.method, sent.url) == ("POST", "https://hooks.slack.com/services/YOUR/WEBHOOK/URL")
    assert sent.headers["content-type"] == "application/json"
    assert sent.body == b'{"text":"Collaboration session started in \\"Design Review\\""}'


async def test_notify_slack_returns_nothing_for_other_events(sandbox: Sandbox) -> None:
    bindings = MemoryBindings()
    outcome = await sandbox.run(
        request(NOTIFY_SLACK, workflow="wf-slack", run="r3", payload=event("participant.left")),
        bindings,
    )
    assert (outcome.status, outcome.result) == ("success", None)
    assert bindings.fetches == [] and bindings.calls == []


async def test_welcome_store_entry_reads_the_store_and_logs_it(sandbox: Sandbox) -> None:
    bindings = MemoryBindings()
    outcome = await sandbox.run(
        request(WELCOME_STORE_ENTRY, workflow="wf-store", run="r4", payload=event("user.created")),
        bindings,
    )
    assert (outcome.status, outcome.result) == ("success", {"checked": True})
    assert bindings.calls == [("store.get", ["settings", "user-001"])]
    assert outcome.logs == [{"level": "log", "message": 'User settings: { theme: "dark" }'}]


async def test_typescript_runs_with_its_types_stripped(sandbox: Sandbox) -> None:
    code = """\
interface RoomEvent { event: string; data: { userId: string } }
type Users = Array<{ id: string; name: string }>;
enum Kind { Joined = "joined" }
export default async function (e: RoomEvent, { room }: { room: any }): Promise<object> {
  const users: Users = await room.getUsers();
  const who = users.find((u) => u.id === e.data.userId)!;
  return { kind: Kind.Joined, name: who.name as string };
}
"""
    outcome = await sandbox.run(
        request(code, workflow="wf-ts", run="r5", language="ts"), MemoryBindings()
    )
    assert (outcome.status, outcome.result) == ("success", {"kind": "joined", "name": "Ada"})


async def test_a_versions_second_run_reuses_its_worker(sandbox: Sandbox) -> None:
    first = await sandbox.run(
        request(LOG_NEW_PARTICIPANTS, workflow="wf-warm", run="w1"), MemoryBindings()
    )
    host = sandbox.host_for(ORGANIZATION)
    assert host is not None
    workers = host.workers
    second = await sandbox.run(
        request(LOG_NEW_PARTICIPANTS, workflow="wf-warm", run="w2"), MemoryBindings()
    )
    assert (first.cold, second.cold) == (True, False)
    assert second.status == "success" and host.workers == workers
    # Module state lives on in a warm Worker (one run at a time per Worker).
    code = "let n = 0;\nexport default async () => ++n;\n"
    counts = [
        (await sandbox.run(request(code, workflow="wf-count", run=f"c{i}"), MemoryBindings()))
        for i in range(3)
    ]
    assert [o.result for o in counts] == [1, 2, 3]


async def test_concurrent_runs_of_one_version_each_get_a_worker(sandbox: Sandbox) -> None:
    code = "export default async () => { await new Promise((r) => setTimeout(r, 200)); return 1; }"
    outcomes = await asyncio.gather(
        *(
            sandbox.run(request(code, workflow="wf-par", run=f"p{i}"), MemoryBindings())
            for i in range(3)
        )
    )
    assert [o.status for o in outcomes] == ["success"] * 3
    assert all(o.cold for o in outcomes)
    again = await sandbox.run(request(code, workflow="wf-par", run="p9"), MemoryBindings())
    assert not again.cold


async def test_a_new_version_replaces_the_old_worker(sandbox: Sandbox) -> None:
    def code(n: int) -> str:
        return f"export default async () => ({{ version: {n} }});"

    async def run(version: int, run_id: str):
        return await sandbox.run(
            request(code(version), workflow="wf-ver", run=run_id, version=version),
            MemoryBindings(),
        )

    v1 = await run(1, "v1a")
    host = sandbox.host_for(ORGANIZATION)
    assert host is not None
    workers = host.workers
    v1_warm = await run(1, "v1b")
    v2 = await run(2, "v2a")
    assert [o.result for o in (v1, v1_warm, v2)] == [{"version": 1}, {"version": 1}, {"version": 2}]
    assert (v1.cold, v1_warm.cold, v2.cold) == (True, False, True)
    assert host.workers == workers  # v1's Worker was terminated when v2 arrived
    late_v1 = await run(1, "v1c")  # an out-of-order run of the old version: runs, is not kept
    assert (late_v1.result, late_v1.cold, host.workers) == ({"version": 1}, True, workers)
    v2_warm = await run(2, "v2b")
    assert not v2_warm.cold


async def test_a_thrown_error_is_an_error_with_message_and_stack(sandbox: Sandbox) -> None:
    code = "export default async function () {\n  throw new Error('room is locked');\n}\n"
    outcome = await sandbox.run(request(code, workflow="wf-throw", run="e1"), MemoryBindings())
    assert outcome.status == "error" and outcome.result is None
    assert outcome.error is not None
    assert outcome.error["message"] == "room is locked"
    assert outcome.error["stack"].startswith("Error: room is locked\n")
    assert "workflow.js:2:9" in outcome.error["stack"]
    assert "data:" not in outcome.error["stack"]


async def test_an_error_thrown_through_the_sandbox_fetch_shows_no_frame_of_the_prelude(
    sandbox: Sandbox,
) -> None:
    code = 'export default async () => {\n  await fetch("not a url");\n};\n'
    outcome = await sandbox.run(request(code, workflow="wf-fetchthrow", run="e3"), MemoryBindings())
    assert outcome.error is not None
    assert outcome.error["message"] == 'TypeError: fetch: "not a url" is not an absolute URL'
    assert "workflow.js:2:" in outcome.error["stack"]
    assert "blob:" not in outcome.error["stack"] and "data:" not in outcome.error["stack"]


async def test_a_binding_error_rejects_the_codes_promise(sandbox: Sandbox) -> None:
    code = """export default async (e, { store }) => {
  try { await store.get(42); } catch (err) { return err.message; }
}"""
    outcome = await sandbox.run(request(code, workflow="wf-berr", run="e2"), MemoryBindings())
    assert outcome.result == "store.get(store, key) takes two strings"


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        ("{ f() {} }", 'a function cannot be serialized (at key "f")'),
        ("{ n: 10n }", 'a bigint cannot be serialized (at key "n")'),
        ("(() => { const a = {}; a.self = a; return a; })()", "circular structure"),
        ("Symbol('s')", "a symbol cannot be serialized"),
    ],
)
async def test_a_result_that_is_not_json_is_an_error(sandbox: Sandbox, returned: str, message):
    code = f"export default async () => ({returned});"
    outcome = await sandbox.run(request(code, workflow="wf-nojson", run="j1"), MemoryBindings())
    assert outcome.status == "error" and outcome.error is not None
    assert "the return value is not JSON" in outcome.error["message"]
    assert message in outcome.error["message"]


async def test_undefined_and_null_results_are_none(sandbox: Sandbox) -> None:
    for n, value in enumerate(("undefined", "null")):
        code = f"export default async () => {value};"
        outcome = await sandbox.run(
            request(code, workflow="wf-none", run=f"u{n}", version=n + 1), MemoryBindings()
        )
        assert (outcome.status, outcome.result) == ("success", None)


async def test_code_that_does_not_load_is_an_error_and_its_worker_is_dropped(sandbox: Sandbox):
    syntax = await sandbox.run(
        request("export default async function( {\n return 1 }", workflow="wf-syntax", run="s1"),
        MemoryBindings(),
    )
    assert syntax.status == "error" and syntax.error is not None
    assert syntax.error["message"].startswith("SyntaxError:")
    assert "workflow.js:2:9" in syntax.error["message"]
    no_default = await sandbox.run(
        request("export const x = 1;", workflow="wf-nodef", run="s2"), MemoryBindings()
    )
    assert no_default.error == {
        "message": "TypeError: the module must export a default function",
        "stack": no_default.error["stack"] if no_default.error else None,
    }
    again = await sandbox.run(
        request("export const x = 1;", workflow="wf-nodef", run="s3"), MemoryBindings()
    )
    assert again.cold


async def test_console_levels_are_kept_and_objects_formatted(sandbox: Sandbox) -> None:
    code = """export default async () => {
  console.info("i"); console.warn("w", 1); console.error(new Error("x").message);
  console.debug({ a: [1, 2] }); console.log("%s is %d", "n", 4);
}"""
    outcome = await sandbox.run(request(code, workflow="wf-console", run="c1"), MemoryBindings())
    assert outcome.logs == [
        {"level": "info", "message": "i"},
        {"level": "warn", "message": "w 1"},
        {"level": "error", "message": "x"},
        {"level": "debug", "message": "{ a: [ 1, 2 ] }"},
        {"level": "log", "message": "n is 4"},
    ]


# --- the sandbox's code check: Deno's parser, never the code (shared.code_check)


async def test_compile_check_never_runs_the_code(sandbox: Sandbox, tmp_path) -> None:
    marker = tmp_path / "ran"
    code = f"await Deno.writeTextFile({str(marker)!r}, 'x');\nexport default () => 1;\n"
    started = time.perf_counter()
    with pytest.raises(CodeError, match=r"Deno\.writeTextFile is not available"):
        await sandbox.compile_check(code, "ts")
    assert not marker.exists()
    assert time.perf_counter() - started < 5  # ~20 ms; generous for slow CI
