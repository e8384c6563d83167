"""Hostile workflows against real Deno: each is contained and recorded, and a benign run in the
same host (one organization) completes meanwhile."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.workflow_runner.sandbox import RunOutcome, Sandbox, SandboxSettings
from services.workflow_runner.sandbox.conversation import Conversation
from services.workflow_runner.sandbox.host import Host
from services.workflow_runner.sandbox.launch import HOST_NICE, OFFENDER_NICE
from shared.sandbox_rules import blocked_builtin_message
from tests.support.polling import eventually
from tests.support.sandbox import (
    LOG_NEW_PARTICIPANTS,
    ORGANIZATION,
    ROOM,
    MemoryBindings,
    request,
)
from tests.support.sandbox_hosts import gone, usable_host

pytestmark = pytest.mark.integration

SETTINGS = SandboxSettings(
    max_hosts=2,  # the organization's host and its quarantine's
    wall_timeout_s=1.0,
    max_fetches_per_run=20,
    max_calls_per_run=100,
    max_log_entries=50,
    max_log_bytes=4096,
    max_result_bytes=1024,
)
PAYLOAD = "PAYLOAD-7f3a"


@pytest.fixture(scope="module")
async def sandbox() -> AsyncIterator[Sandbox]:
    sandbox = Sandbox(SETTINGS)
    await sandbox.start()
    yield sandbox
    await sandbox.close()


@pytest.fixture(scope="module")
async def roomy_sandbox() -> AsyncIterator[Sandbox]:
    """SETTINGS with a wall time far past the CPU limit: a spinning Worker is lowered to the
    least CPU priority after one watch period, and on a busy machine its 500 ms of CPU took
    longer than SETTINGS' 1 s of wall time."""
    sandbox = Sandbox(SETTINGS.model_copy(update={"wall_timeout_s": 10.0}))
    await sandbox.start()
    yield sandbox
    await sandbox.close()


def host_of(sandbox: Sandbox) -> Host:
    host = sandbox.host_for(ORGANIZATION)
    assert host is not None
    return host


async def benign(sandbox: Sandbox, run_id: str) -> RunOutcome:
    return await sandbox.run(
        request(LOG_NEW_PARTICIPANTS, workflow="wf-benign", run=run_id), MemoryBindings()
    )


async def contained(
    sandbox: Sandbox, code: str, *, workflow: str, bindings: MemoryBindings | None = None
) -> RunOutcome:
    """Run `code` and, alongside on the same host, the guide's logging workflow, which must succeed
    quickly; the host's own stdout and stderr stay empty of the payload."""
    host = await usable_host(sandbox)  # the one that carries both runs
    hostile = asyncio.create_task(
        sandbox.run(
            request(code, workflow=workflow, run=f"{workflow}-run"), bindings or MemoryBindings()
        )
    )
    await asyncio.sleep(0.05)  # the hostile run is under way
    meanwhile = await benign(sandbox, f"{workflow}-benign")
    assert meanwhile.status == "success", meanwhile.error
    assert meanwhile.duration_ms < 900
    outcome = await hostile
    assert PAYLOAD.encode() not in host.stdout.data + host.stderr.data
    assert host.stdout.total == 0
    return outcome


@pytest.mark.parametrize(
    "code",
    [
        "export default async () => { while (true) {} };",
        "export default async () => { await null; while (true) {} };",
        "while (true) {}\nexport default async () => 1;",
        "export default async () => {\n"
        "  setTimeout(() => { for (;;) {} }, 10);\n  await new Promise(() => {});\n};",
    ],
    ids=["loop", "loop-after-await", "loop-at-load", "loop-in-a-timer"],
)
async def test_code_that_keeps_its_event_loop_blocked_is_stopped_at_the_cpu_limit(
    roomy_sandbox, code
):
    sandbox = roomy_sandbox
    old = await usable_host(sandbox)
    # A workflow of its own each time: one that went past a limit runs in quarantine after.
    outcome = await contained(sandbox, code, workflow=f"wf-spin-{abs(hash(code))}")
    assert outcome.status == "timeout"
    message = outcome.error["message"]
    assert message.startswith("cpu limit: the workflow ran ") and message.endswith(
        " ms without yielding and was stopped"
    ), message
    # terminate() frees the run but not a spinning thread (denoland/deno#35657): the host
    # is retired and killed, so no CPU stays burnt; new runs go to a new host.
    await eventually(gone(old), timeout_s=5)
    after = await benign(sandbox, "after-spin")
    assert after.status == "success" and host_of(sandbox).pid != old.pid


async def test_the_cpu_limit_counts_cpu_time_not_a_blocked_loop_waiting(roomy_sandbox: Sandbox):
    """Blocked 800 ms in Atomics.wait, past the 500 ms CPU limit in wall time, the thread
    used almost no CPU: as a Worker starved by a busy machine, it is not stopped. (In the
    roomy sandbox: on a busy machine the 800 ms and the run around them took longer than
    SETTINGS' 1 s of wall time.)"""
    code = """const cell = new Int32Array(new SharedArrayBuffer(4));
export default async () => Atomics.wait(cell, 0, 0, 800);
"""
    outcome = await contained(roomy_sandbox, code, workflow="wf-waits-800")
    assert (outcome.status, outcome.result) == ("success", "timed-out"), outcome.error
    assert outcome.duration_ms >= 800


async def test_a_wait_is_not_taken_for_cpu_while_the_runner_is_too_busy_to_read_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Blocked 800 ms in Atomics.wait while every answer to the host's question how much CPU
    the thread used comes 900 ms late (a runner too busy to read it): the wait is not counted
    as CPU time, and the run is not stopped. A sandbox of its own, whose answers are late."""
    answer = Conversation._on_cpu

    async def late(self: Conversation, message: dict) -> None:
        await asyncio.sleep(0.9)
        await answer(self, message)

    monkeypatch.setattr(Conversation, "_on_cpu", late)
    sandbox = Sandbox(SETTINGS.model_copy(update={"wall_timeout_s": 10.0}))
    await sandbox.start()
    try:
        code = """const cell = new Int32Array(new SharedArrayBuffer(4));
export default async () => Atomics.wait(cell, 0, 0, 800);
"""
        outcome = await sandbox.run(
            request(code, workflow="wf-waits-late", run="waits-late"), MemoryBindings()
        )
        assert (outcome.status, outcome.result) == ("success", "timed-out"), outcome.error
        spin = "export default async () => { while (true) {} };"  # and a spinner still stops
        spun = await sandbox.run(
            request(spin, workflow="wf-spins-late", run="spins-late"), MemoryBindings()
        )
        assert spun.status == "timeout" and spun.error is not None
        assert spun.error["message"].startswith("cpu limit: the workflow ran "), spun.error
    finally:
        await sandbox.close()


async def test_a_loop_blocked_without_using_the_cpu_is_stopped_past_ten_cpu_limits() -> None:
    """Atomics.wait forever: never past the CPU limit, stopped at ten times it in wall time.
    A sandbox of its own: a CPU limit whose tenfold comes before the wall time."""
    sandbox = Sandbox(SandboxSettings(max_hosts=2, cpu_limit_ms=50, wall_timeout_s=5.0))
    await sandbox.start()
    try:
        old = await usable_host(sandbox)
        code = """const cell = new Int32Array(new SharedArrayBuffer(4));
export default async () => { Atomics.wait(cell, 0, 0); };
"""
        outcome = await sandbox.run(
            request(code, workflow="wf-waits", run="waits"), MemoryBindings()
        )
        assert outcome.status == "timeout"
        message = outcome.error["message"]
        assert message.startswith("the workflow kept its event loop blocked ") and message.endswith(
            " ms (wall time) and was stopped"
        ), message
        assert 500 <= outcome.duration_ms < 5000
        await eventually(gone(old), timeout_s=10)
        assert (await benign(sandbox, "after-waits")).status == "success"
    finally:
        await sandbox.close()


async def test_code_past_the_wall_time_is_stopped_and_its_host_replaced(sandbox):
    old = await usable_host(sandbox)
    code = "export default async () => new Promise(() => {});"
    outcome = await contained(sandbox, code, workflow="wf-never")
    assert outcome.status == "timeout"
    # On a machine too busy to run the host (CI's two workers), the message says so too.
    starved = "; its sandbox was waiting for a CPU much of that time (an overloaded machine)"
    assert outcome.error == {
        "message": "the workflow ran longer than 1 s (wall time) and was stopped"
        + (starved if outcome.starved else ""),
        "stack": None,
    }
    await eventually(gone(old), timeout_s=5)
    after = await benign(sandbox, "after")
    assert after.status == "success" and host_of(sandbox).pid != old.pid


class FirstCallWaits(MemoryBindings):
    """The first binding call is never answered (its run waits on); the later ones are."""

    async def call(self, method: str, args: list) -> object:
        if not self.calls:
            self.calls.append((method, args))
            await asyncio.Event().wait()
        return await super().call(method, args)


async def test_a_host_past_the_cpu_limit_is_killed_without_waiting_for_its_other_runs() -> None:
    """The host of a Worker past the CPU limit is killed soon after, not once its other runs
    end (the spinning thread would burn a core until then); they run once more, each on a
    host of its own. A sandbox of its own: a wall time the waiting run cannot reach first."""
    sandbox = Sandbox(SandboxSettings(max_hosts=2, wall_timeout_s=30.0))
    await sandbox.start()
    try:
        old = await usable_host(sandbox)
        bindings = FirstCallWaits()
        code = "export default async (event, { room }) => (await room.get()).name;"
        waiting = asyncio.create_task(
            sandbox.run(request(code, workflow="wf-waits", run="waits"), bindings)
        )
        await eventually(lambda: _true(bindings.calls), timeout_s=10)  # waiting on old
        spin = "export default async () => { while (true) {} };"
        outcome = await sandbox.run(request(spin, workflow="wf-spin", run="spin"), MemoryBindings())
        assert outcome.error["message"].startswith("cpu limit:")
        await eventually(gone(old), timeout_s=10)
        assert "spun on past the CPU limit" in (old.death_reason or "")
        bystander = await waiting
        assert (bystander.status, bystander.result) == ("success", ROOM["name"])
    finally:
        await sandbox.close()


async def _true(value: object) -> bool:
    return bool(value)


async def test_a_loop_left_behind_after_the_return_gets_its_host_replaced(sandbox: Sandbox):
    old = await usable_host(sandbox)
    code = "export default async () => { setTimeout(() => { while (true) {} }, 10); return 1; };"
    outcome = await contained(sandbox, code, workflow="wf-left-behind")
    assert (outcome.status, outcome.result) == ("success", 1)
    await eventually(gone(old), timeout_s=5)  # the idle Worker missed a ping
    assert (await benign(sandbox, "after-left-behind")).status == "success"


class Tries(MemoryBindings):
    """room.get() answers which time it is asked: the code can tell a first try from a second."""

    async def call(self, method: str, args: list) -> object:
        await super().call(method, args)
        return {"try": sum(1 for m, _ in self.calls if m == method)}


async def test_a_heap_bomb_ends_its_host_and_no_run_but_its_own() -> None:
    # The CPU limit out of the bomb's way: it must meet the heap limit first, however slow
    # the machine (test_sandbox_tenancy.py's bomb once spent 507 ms of CPU before it).
    sandbox = Sandbox(SandboxSettings(max_hosts=2, wall_timeout_s=10.0, cpu_limit_ms=10_000))
    await sandbox.start()
    try:
        before = (await usable_host(sandbox)).pid
        bomb = """export default async () => {
  await new Promise((r) => setTimeout(r, 300));
  const a = []; while (true) a.push(new Array(1e5).fill(1));
};"""
        bystander = """export default async (event, { room }) => {
  const now = (await room.get()).try;
  await new Promise((r) => setTimeout(r, now === 1 ? 5000 : 1));
  return now;
};"""
        exploded, carried = await asyncio.gather(
            sandbox.run(request(bomb, workflow="wf-bomb", run="bomb"), MemoryBindings()),
            sandbox.run(request(bystander, workflow="wf-by", run="by"), Tries()),
        )
        # Both died with the host and ran once more on a new one: there the bystander
        # succeeded, and the bomb ended that host too.
        assert (carried.status, carried.result) == ("success", 2)
        assert exploded.status == "error" and exploded.error is not None
        assert exploded.error["message"] == (
            "the sandbox crashed (out of memory: over the JavaScript heap limit of 128 MB); "
            "the run was stopped"
        )
        after = await benign(sandbox, "after-bomb")
        assert after.status == "success" and after.result == {"logged": True}
        assert host_of(sandbox).pid != before
    finally:
        await sandbox.close()


async def test_memory_outside_the_js_heap_is_bounded_too() -> None:
    # ArrayBuffers are outside V8's heap limit: without a cgroup nothing stopped them (this
    # run asks for 2.5 GB). memory.max, or where there is none the runner's watch, kills the
    # host. A sandbox of its own: a low limit, and a wall time the bomb cannot hide behind.
    sandbox = Sandbox(SandboxSettings(max_hosts=2, wall_timeout_s=30.0, memory_max_mb=256))
    await sandbox.start()
    try:
        before = (await usable_host(sandbox)).pid
        bomb = """
export default async () => {
  const kept = [];
  for (let i = 0; i < 40; i++) kept.push(new Uint8Array(64 * 1024 * 1024).fill(1));
  return kept.length;
};
"""
        outcome = await sandbox.run(
            request(bomb, workflow="wf-buffers", run="buffers"), MemoryBindings()
        )
        assert outcome.status == "error" and outcome.error is not None
        assert outcome.error["message"] == (
            "the sandbox crashed (out of memory: over the memory limit of 256 MB); "
            "the run was stopped"
        )
        after = await benign(sandbox, "after-buffers")
        assert after.status == "success" and host_of(sandbox).pid != before
    finally:
        await sandbox.close()


@pytest.mark.parametrize(
    ("code", "refusal"),
    [
        (
            'return await Deno.readTextFile("/etc/passwd");',
            'read access to "/etc/passwd" was refused',
        ),
        ('return (await import("file:///etc/passwd")).default;', "read access to"),
        ('return Deno.env.get("HOME");', 'env access to "HOME" was refused'),
        ('return Deno.run({ cmd: ["/bin/ls"] });', 'run access to "/bin/ls" was refused'),
        ('return await new Deno.Command("/bin/ls").output();', 'run access to "/bin/ls" was'),
        (
            'return await Deno.connect({ hostname: "127.0.0.1", port: 5432 });',
            "net access to",
        ),
        (
            'return await import("https://example.com/x.js");',
            'import access to "example.com',
        ),
        ('return await import("npm:lodash");', "an npm: specifier was refused"),
        ('return await import("jsr:@std/path");', 'import access to "jsr.io'),
        (
            'const fs = await import("node:fs"); return fs.readFileSync("/etc/passwd", "utf8");',
            "node:fs is not available in the workflow sandbox",
        ),
        (
            'return process.getBuiltinModule("fs").readFileSync("/etc/passwd", "utf8");',
            "node:fs is not available in the workflow sandbox",
        ),
        (
            'return (await import("node:child_process")).execSync("ls");',
            "node:child_process is not available",
        ),
    ],
)
async def test_files_env_subprocesses_network_and_remote_code_are_refused(sandbox, code, refusal):
    outcome = await contained(
        sandbox, f"export default async () => {{ {code} }};", workflow="wf-perm"
    )
    assert outcome.status == "error" and outcome.error is not None
    assert refusal in outcome.error["message"]
    assert "--allow" not in outcome.error["message"]
    assert "root:" not in str(outcome)


@pytest.mark.parametrize(
    "code",
    [
        'new Worker("data:application/javascript,while(true){}", { type: "module" });',
        'const { Worker } = await import("node:worker_threads"); new Worker("1", { eval: true });',
        'process.getBuiltinModule("worker_threads");',
        'const { createRequire } = await import("node:module"); createRequire("file:///x")("v8");',
        '(await import("node:v8")).setFlagsFromString("--jitless");',
    ],
    ids=["web-worker", "worker-threads", "get-builtin", "require", "v8-flags"],
)
async def test_no_thread_that_outlives_the_run_and_no_process_wide_flags(sandbox, code):
    outcome = await contained(
        sandbox, f"export default async () => {{ {code} }};", workflow="wf-threads"
    )
    assert outcome.status == "error" and outcome.error is not None
    assert (
        "is not available in the workflow sandbox" in outcome.error["message"]
        or outcome.error["message"] == "ReferenceError: Worker is not defined"
    )


async def test_writes_to_stdout_and_stderr_never_reach_the_host(sandbox: Sandbox) -> None:
    code = f"""
const bytes = new TextEncoder().encode("{PAYLOAD}\\n");
const attempt = async (what, fn) => {{
  try {{ await fn(); return what + ": written"; }} catch (e) {{ return what + ": " + e.message; }}
}};
export default async () => [
  await attempt("Deno.stdout", () => Deno.stdout.write(bytes)),
  await attempt("Deno.stderr", () => Deno.stderr.writeSync(bytes)),
  await attempt("node:fs", async () => (await import("node:fs")).writeSync(1, "{PAYLOAD}")),
  await attempt("process.stdout", () => process.stdout.write("{PAYLOAD} via process.stdout")),
  await attempt("node:process", async () =>
    (await import("node:process")).default.stderr.write("{PAYLOAD} via process.stderr")),
  await attempt("console", () => console.log("{PAYLOAD} via console")),
];
"""
    outcome = await contained(sandbox, code, workflow="wf-stdio")
    assert outcome.status == "success", outcome.error
    assert outcome.result == [
        "Deno.stdout: Deno.stdout is not available in the workflow sandbox",
        "Deno.stderr: Deno.stderr is not available in the workflow sandbox",
        f"node:fs: {blocked_builtin_message('fs')}",
        "process.stdout: written",
        "node:process: written",
        "console: written",
    ]
    # What did get "written" went to the run's log, not to the host.
    assert [entry["message"] for entry in outcome.logs] == [
        f"{PAYLOAD} via process.stdout",
        f"{PAYLOAD} via process.stderr",
        f"{PAYLOAD} via console",
    ]


async def test_the_host_cannot_be_signalled_or_ended_from_a_workflow(sandbox: Sandbox) -> None:
    pid = (await usable_host(sandbox)).pid
    code = """
const attempt = (fn) => { try { fn(); return "done"; } catch (e) { return e.message; } };
export default async () => [
  attempt(() => Deno.kill(Deno.pid, "SIGKILL")),
  attempt(() => process.kill(process.pid, "SIGSTOP")),
  attempt(() => process.abort()),
  attempt(() => Deno.exit(1)),
  attempt(() => process.exit(1)),
  attempt(() => close()),
];
"""
    outcome = await contained(sandbox, code, workflow="wf-signals")
    assert outcome.status == "success", outcome.error
    assert outcome.result == [
        f"{name} is not available in the workflow sandbox"
        for name in (
            "Deno.kill",
            "process.kill",
            "process.abort",
            "Deno.exit",
            "process.exit",
            "close()",
        )
    ]
    assert host_of(sandbox).pid == pid


async def test_a_workflow_learns_no_path_argument_or_process_id_of_its_host(sandbox: Sandbox):
    code = """
import { cwd as nodeCwd } from "node:process";
const attempt = (fn) => { try { return fn(); } catch (e) { return e.message; } };
export default async () => [
  attempt(() => Deno.cwd()), attempt(() => Deno.execPath()), attempt(() => Deno.args),
  attempt(() => Deno.mainModule), attempt(() => Deno.pid), attempt(() => Deno.ppid),
  attempt(() => process.cwd()), attempt(() => nodeCwd()), attempt(() => process.chdir("/tmp")),
  attempt(() => process.execPath), attempt(() => process.argv), attempt(() => process.argv0),
  attempt(() => process.execArgv), attempt(() => process.pid), attempt(() => process.ppid),
];
"""
    outcome = await contained(sandbox, code, workflow="wf-host-facts")
    assert outcome.status == "success", outcome.error
    assert outcome.result == [
        "/", "deno", [],
        "file:///workflow.js", 0, 0,
        "/", "/", "process.chdir is not available in the workflow sandbox",
        "deno", [], "deno", [], 0, 0,
    ]  # fmt: skip


async def test_a_workflow_cannot_tell_which_tools_its_host_machine_has(sandbox: Sandbox):
    # `sh` is on every such machine, the other is on none: refused alike, they tell nothing.
    code = """
export default async () => {
  const said = [];
  for (const tool of ["sh", "no-such-tool-anywhere"]) {
    try { await new Deno.Command(tool).output(); said.push("ran"); }
    catch (e) { said.push(e.message.split(tool).join("TOOL")); }
  }
  return said;
};
"""
    outcome = await contained(sandbox, code, workflow="wf-tool-probe")
    assert outcome.status == "success", outcome.error
    [sh, nothing] = outcome.result
    assert sh == nothing != "ran"


async def test_bindings_lead_nowhere_but_the_workers_own_realm(sandbox: Sandbox) -> None:
    code = """
export default async (event, bindings) => {
  const global = bindings.store.get.constructor("return this")();
  const roomData = await bindings.room.get();
  let assigned;
  try { bindings.store.get = () => 1; assigned = "assigned"; } catch (e) { assigned = e.name; }
  return {
    sameGlobal: global === globalThis,
    internals: typeof global.Deno[Deno.internal],
    worker: typeof global.Worker,
    read: await global.Deno.readTextFile("/etc/passwd").then(() => "read", (e) => e.name),
    ownPrototype: Object.getPrototypeOf(roomData) === Object.prototype,
    frozen: [Object.isFrozen(bindings), Object.isFrozen(bindings.store), assigned],
  };
};
"""
    outcome = await contained(sandbox, code, workflow="wf-realm")
    assert outcome.result == {
        "sameGlobal": True,
        "internals": "undefined",
        "worker": "undefined",
        "read": "NotCapable",
        "ownPrototype": True,
        "frozen": [True, True, "TypeError"],
    }


async def test_prototype_pollution_stays_in_the_polluting_worker(sandbox: Sandbox) -> None:
    bindings = MemoryBindings()
    code = """
export default async (event, { store }) => {
  Object.prototype.polluted = "yes";
  Array.prototype.extra = "yes";
  const settings = await store.get("settings", "user-001");
  return { settings, own: Object.keys(settings) };
};
"""
    outcome = await contained(sandbox, code, workflow="wf-pollute", bindings=bindings)
    assert outcome.result == {"settings": {"theme": "dark"}, "own": ["theme"]}
    assert bindings.calls == [("store.get", ["settings", "user-001"])]  # exactly, nothing more
    clean = await sandbox.run(
        request(
            "export default async () => [({}).polluted ?? 'clean', [].extra ?? 'clean'];",
            workflow="wf-other",
            run="clean",
        ),
        MemoryBindings(),
    )
    assert clean.result == ["clean", "clean"]


async def test_the_prelude_url_reloads_nothing_and_revoking_it_harms_no_later_worker(
    sandbox: Sandbox,
) -> None:
    # Each Worker loads the prelude from a blob: URL of its own (its `location`), revoked by the
    # host once the prelude has run; importing it again answers the module already evaluated.
    code = """
export default async () => {
  const url = location.href;
  URL.revokeObjectURL(url);
  const again = await import(url);
  return [url.slice(0, 5), Object.keys(again).length];
};
"""
    outcome = await contained(sandbox, code, workflow="wf-prelude")
    assert (outcome.status, outcome.result) == ("success", ["blob:", 0])
    fresh = await sandbox.run(
        request("export default async () => 'cold';", workflow="wf-after-prelude", run="p2"),
        MemoryBindings(),
    )
    assert (fresh.status, fresh.result, fresh.cold) == ("success", "cold", True)


async def test_workers_of_one_host_share_no_channel_and_no_cache(sandbox: Sandbox) -> None:
    # On deno 2.9.8 a BroadcastChannel message reached another workflow's Worker listening on
    # the same name, and CacheStorage was one store per host (on disk, unbounded): one
    # workflow read what another had put there. The prelude removes both.
    writer = """
export default async () => {
  const tried = [];
  try { new BroadcastChannel("rh").postMessage("from A"); tried.push("posted"); }
  catch (e) { tried.push(e.name); }
  try { await (await caches.open("rh")).put("https://x.test/a", new Response("A")); }
  catch (e) { tried.push(e.name); }
  return tried;
};
"""
    reader = (
        "export default async () => [typeof BroadcastChannel, typeof caches, typeof Cache,"
        " typeof CacheStorage];"
    )
    outcome = await contained(sandbox, writer, workflow="wf-share-a")
    assert outcome.result == ["ReferenceError", "ReferenceError"]
    other = await contained(sandbox, reader, workflow="wf-share-b")
    assert other.result == ["undefined"] * 4


async def test_a_then_on_object_prototype_cannot_take_the_host_down(sandbox: Sandbox) -> None:
    # On deno 2.9.8 each of the first three made the Worker's own runtime code panic after
    # the run, ending the host and every run it carried.
    pid = (await usable_host(sandbox)).pid
    code = """
const attempt = (fn) => { try { fn(); return "done"; } catch (e) { return e.name; } };
export default async () => [
  attempt(() => { Object.prototype.then = function () {}; }),
  attempt(() => Object.defineProperty(Object.prototype, "then", { get: () => () => {} })),
  attempt(() => Object.defineProperty(Promise, Symbol.species, { value: function () {} })),
  attempt(() => { Promise.prototype.then = function () {}; }),
  await { then(resolve) { resolve("an object's own then works"); } },
  await (() => { const o = {}; o.then = (resolve) => resolve("assigned too"); return o; })(),
];
"""
    expected = [*["TypeError"] * 4, "an object's own then works", "assigned too"]
    outcome = await contained(sandbox, code, workflow="wf-then")
    assert outcome.result == expected
    # The panic came when the Worker waited for its next message: a second run makes it wait.
    again = await sandbox.run(request(code, workflow="wf-then", run="then-2"), MemoryBindings())
    assert (again.status, again.result, again.cold) == ("success", expected, False)
    assert host_of(sandbox).pid == pid


async def test_posting_protocol_messages_speaks_only_for_the_own_run(sandbox: Sandbox) -> None:
    own = MemoryBindings()
    code = """
export default async () => {
  for (let id = 1; id < 50; id++) {
    postMessage({ k: "call", id: 1000 + id, method: "store.get", args: ["settings", "x" + id] });
    postMessage({ k: "call", id, method: "store.put", args: [] });
    postMessage({ k: "log", level: "shout", message: "x" });
  }
  await new Promise((r) => setTimeout(r, 100));
  return "posted";
};
"""
    outcome = await contained(sandbox, code, workflow="wf-forge", bindings=own)
    assert outcome.status == "success" and outcome.result == "posted"
    assert {method for method, _ in own.calls} == {"store.get"}  # only to its own bindings
    assert all(entry["level"] != "shout" for entry in outcome.logs)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://[::ffff:127.0.0.1]:8080/",
        "http://localhost:8080/admin",
        "http://metadata.internal/computeMetadata/v1/",
    ],
)
async def test_fetch_to_private_addresses_is_refused_and_logged(sandbox: Sandbox, url: str):
    bindings = MemoryBindings()
    code = f"""
export default async () => {{
  try {{ await fetch({url!r}); return "fetched"; }}
  catch (e) {{ return e.name + ": " + e.message; }}
}};
"""
    outcome = await contained(sandbox, code, workflow="wf-ssrf", bindings=bindings)
    assert outcome.status == "success"
    assert outcome.result.startswith("TypeError: fetch GET ")
    assert "refused" in outcome.result and "SSRF guard" in outcome.result
    assert bindings.fetches == [] and len(bindings.refused) == 1
    [logged] = outcome.logs
    assert logged["level"] == "warn" and "refused" in logged["message"]


async def test_thousands_of_fetches_and_binding_calls_are_capped(sandbox: Sandbox) -> None:
    bindings = MemoryBindings()
    code = """
export default async (event, { room }) => {
  const fetches = await Promise.allSettled(
    Array.from({ length: 1500 }, () => fetch("https://hooks.slack.com/x")));
  const calls = await Promise.allSettled(Array.from({ length: 1500 }, () => room.get()));
  const count = (all) => all.filter((r) => r.status === "fulfilled").length;
  const failed = [...fetches, ...calls].filter((r) => r.reason);
  const reasons = new Set(failed.map((r) => r.reason.message));
  return { fetched: count(fetches), called: count(calls), reasons: [...reasons].sort() };
};
"""
    outcome = await contained(sandbox, code, workflow="wf-many", bindings=bindings)
    assert outcome.result == {
        "fetched": 20,
        "called": 100,
        "reasons": ["binding call limit reached (100 per run)", "fetch limit reached (20 per run)"],
    }
    assert len(bindings.fetches) == 20 and len(bindings.calls) == 100
    assert len(outcome.logs) == SETTINGS.max_log_entries + 1  # one per refusal, capped
    assert outcome.logs[-1]["message"].startswith("1430 more log entries dropped")


async def test_huge_logs_are_capped(sandbox: Sandbox) -> None:
    code = """
export default async () => {
  for (let i = 0; i < 100000; i++) console.log("line " + i);
  return "done";
};
"""
    outcome = await contained(sandbox, code, workflow="wf-logs")
    assert outcome.result == "done"
    assert len(outcome.logs) == SETTINGS.max_log_entries + 1
    assert outcome.logs[0]["message"] == "line 0"
    assert outcome.logs[-1] == {
        "level": "warn",
        "message": "99950 more log entries dropped: a run keeps at most 50 entries and 4096 "
        "bytes of logs",
    }
    one_huge = await sandbox.run(
        request(
            'export default async () => { console.log("x".repeat(5e6)); console.log("after"); };',
            workflow="wf-biglog",
            run="big",
        ),
        MemoryBindings(),
    )
    [kept, note] = one_huge.logs
    assert kept["message"].endswith("[truncated]") and len(kept["message"].encode()) <= 4096
    assert note["message"].startswith("1 more log entries dropped")


async def test_a_result_over_the_cap_is_an_error(sandbox: Sandbox) -> None:
    outcome = await contained(
        sandbox, 'export default async () => "x".repeat(5e6);', workflow="wf-bigresult"
    )
    assert outcome.status == "error" and outcome.error is not None
    assert outcome.error["message"].startswith("RangeError: result too large")
    fits = await sandbox.run(
        request('export default async () => "x".repeat(1000);', workflow="wf-fits", run="fits"),
        MemoryBindings(),
    )
    assert fits.status == "success" and fits.result == "x" * 1000


async def test_uncaught_errors_after_the_return_are_logged_not_fatal(sandbox: Sandbox) -> None:
    code = """
export default async () => {
  setTimeout(() => { throw new Error("from a timer"); }, 0);
  Promise.reject(new Error("nobody waits"));
  await new Promise((r) => setTimeout(r, 20));
  return "still here";
};
"""
    outcome = await contained(sandbox, code, workflow="wf-uncaught")
    assert outcome.result == "still here"
    # In either order: which of the two the Worker's loop reports first varies under load.
    assert sorted(outcome.logs, key=lambda entry: entry["message"]) == [
        {"level": "error", "message": "Uncaught (in promise) Error: nobody waits"},
        {"level": "error", "message": "Uncaught Error: from a timer"},
    ]


async def test_a_host_that_stops_answering_is_killed_and_replaced(sandbox: Sandbox) -> None:
    host = await usable_host(sandbox)
    assert host.pid is not None
    os.kill(host.pid, signal.SIGSTOP)  # our own child: as if its event loop were wedged
    outcome = await benign(sandbox, "wedged")
    # Killed past the wall time and its grace; the run went again, to the new host.
    assert "stopped answering" in (host.death_reason or "")
    assert (outcome.status, outcome.result) == ("success", {"logged": True})
    after = await benign(sandbox, "unwedged")
    assert after.status == "success" and host_of(sandbox).pid != host.pid
    assert after.logs[0]["message"].endswith(ROOM["name"])


def autogroup_nice(pid: int) -> int:
    """A process in init's session (one that never started a session, as under some CI
    runners) is in the root group, whose file is empty: it ranks at nice 0."""
    words = Path(f"/proc/{pid}/autogroup").read_text().split()
    return int(words[-1]) if words else 0


async def test_a_host_leads_a_session_of_its_own_whose_autogroup_ranks_below_ours(
    sandbox: Sandbox,
) -> None:
    """Our terminal's and our group's signals do not reach it, and where Linux has autogroups
    (this machine: asserted, not assumed) its whole group ranks below the runner's."""
    host = await usable_host(sandbox)
    assert host.pid is not None
    assert os.getsid(host.pid) == host.pid != os.getsid(0)
    assert Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"

    async def calm() -> bool:  # an earlier test's blocked Worker lowers it to 19 for a second
        return autogroup_nice(host.pid) == HOST_NICE

    await eventually(calm, timeout_s=5)
    assert autogroup_nice(os.getpid()) == 0
    assert os.getpriority(os.PRIO_PROCESS, host.pid) == HOST_NICE


async def test_a_host_may_not_dump_core_even_where_the_runner_may() -> None:
    """A heap bomb aborts its host: where the system keeps cores, each would be host-sized.
    A sandbox of its own, started while this process may write cores of 64 MB."""
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (64 << 20, hard))
    sandbox = Sandbox(SandboxSettings(max_hosts=1))
    try:
        await sandbox.start()
        host = await usable_host(sandbox)
        assert host.pid is not None
        assert Path(f"/proc/{host.pid}/comm").read_text().strip() == "deno"
        limits = Path(f"/proc/{host.pid}/limits").read_text().splitlines()
        [core] = [line.split() for line in limits if line.startswith("Max core file size")]
        assert core[4:6] == ["0", "0"]  # soft and hard
    finally:
        resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))
        await sandbox.close()


async def test_a_host_whose_worker_stays_blocked_drops_to_the_lowest_priority_till_calm(
    sandbox: Sandbox,
) -> None:
    """A Worker busy 300 ms without yielding (under the CPU limit: it succeeds) takes its
    whole host's scheduling group down to nice 19; a second after, the group is back."""
    host = await usable_host(sandbox)
    assert host.pid is not None
    code = """export default async () => {
  const end = Date.now() + 300;
  while (Date.now() < end) {}
  return 1;
};"""
    busy = asyncio.create_task(
        sandbox.run(request(code, workflow="wf-busy", run="busy"), MemoryBindings())
    )

    async def lowered() -> bool:
        return autogroup_nice(host.pid) == 19

    await eventually(lowered, timeout_s=5, interval_s=0.01)
    assert ((await busy).status, (await busy).result) == ("success", 1)

    async def calm() -> bool:
        return autogroup_nice(host.pid) == HOST_NICE

    await eventually(calm, timeout_s=5)
    assert host.alive


class Gated(MemoryBindings):
    """Binding calls wait for the gate to open: the runs stay in flight meanwhile."""

    def __init__(self, gate: asyncio.Event) -> None:
        super().__init__()
        self.gate = gate

    async def call(self, method: str, args: list) -> object:
        await self.gate.wait()
        return await super().call(method, args)


async def test_a_host_carrying_a_burst_of_runs_ranks_lower_until_it_has_drained(
    sandbox: Sandbox,
) -> None:
    host = await usable_host(sandbox)
    assert host.pid is not None and autogroup_nice(host.pid) == HOST_NICE
    gate = asyncio.Event()
    code = "export default async (event, { room }) => (await room.get()).name;"
    runs = [
        asyncio.create_task(
            sandbox.run(request(code, workflow="wf-burst", run=f"burst-{n}"), Gated(gate))
        )
        for n in range(4)
    ]
    await eventually(lambda: _true(host.in_flight == 4), timeout_s=10)
    assert autogroup_nice(host.pid) == 10
    gate.set()
    assert {(await run).result for run in runs} == {ROOM["name"]}

    async def drained() -> bool:  # a Worker's cold start under load may block: 19 for a second
        return autogroup_nice(host.pid) == HOST_NICE

    await eventually(drained, timeout_s=5)


async def test_a_worker_blocked_past_one_watch_period_runs_at_the_lowest_cpu_priority(
    roomy_sandbox: Sandbox,
):
    """While it spins toward the CPU limit, the spinning Worker's thread is reniced to 19;
    the host's other threads keep their priority (a Worker demoted by an earlier test keeps
    its 19: it is left out). The spinner's thread is told by the CPU it burns: which Worker
    runs it depends on whether the host's spare Worker was ready. Demoted, the spinner's
    500 ms of CPU can take past 1 s of wall time on a busy machine: the roomy sandbox."""
    sandbox = roomy_sandbox
    host = await usable_host(sandbox)

    def threads() -> dict[str, tuple[int, int]]:
        """(nice, CPU ticks) of each of the host's threads, by name."""
        found = {}
        for task in Path(f"/proc/{host.pid}/task").iterdir():
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            ticks = int(fields[11]) + int(fields[12])
            found[name] = (os.getpriority(os.PRIO_PROCESS, int(task.name)), ticks)
        return found

    start = threads()
    before = {name for name, (nice, _) in start.items() if nice == 19}
    spin = "export default async () => { while (true) {} };"
    spinning = asyncio.create_task(
        sandbox.run(request(spin, workflow="wf-demoted", run="demoted"), MemoryBindings())
    )

    async def demoted() -> dict[str, tuple[int, int]] | None:
        now = threads()
        return now if {n for n, (nice, _) in now.items() if nice == 19} - before else None

    nice = await eventually(demoted, timeout_s=10)
    await asyncio.sleep(0.1)  # the spinner burns on, at its new priority
    burnt = {
        name: ticks - start.get(name, (0, 0))[1]
        for name, (_, ticks) in threads().items()
        if name.startswith("worker-")
    }
    assert [name for name, (value, _) in nice.items() if value == 19 and name not in before] == [
        max(burnt, key=lambda name: burnt[name])
    ]  # the Worker that spins
    assert nice["deno"][0] == HOST_NICE
    outcome = await spinning
    assert outcome.error["message"].startswith("cpu limit:"), outcome.error


async def test_a_replaced_host_is_the_spare_started_ahead(sandbox: Sandbox) -> None:
    old = await usable_host(sandbox)
    spare = await eventually(lambda: _usable(sandbox.spare), timeout_s=10)
    spin = "export default async () => { while (true) {} };"
    await sandbox.run(request(spin, workflow="wf-spare", run="spare"), MemoryBindings())
    await eventually(gone(old), timeout_s=10)
    assert (await usable_host(sandbox)).pid == spare.pid
    assert (await benign(sandbox, "on-the-spare")).status == "success"
    await eventually(lambda: _usable(sandbox.spare), timeout_s=10)  # and another one ahead


async def _usable(host: Host | None) -> Host | None:
    return host if host is not None and host.usable else None


async def test_a_workflow_past_a_limit_runs_in_quarantine_then(roomy_sandbox: Sandbox) -> None:
    """Its next runs go to a host of the quarantine, where it can strike only the others
    there; the shared host that took its first strike was replaced. (In the roomy sandbox:
    on a busy machine the spinner reached the 1 s wall time starved, which is no strike.)"""
    sandbox = roomy_sandbox
    spin = "export default async () => { while (true) {} };"
    outcome = await sandbox.run(
        request(spin, workflow="wf-strikes", run="strike-1"), MemoryBindings()
    )
    assert outcome.status == "timeout" and sandbox.quarantined("wf-strikes"), outcome.error
    assert not sandbox.quarantined("wf-benign")
    again = await sandbox.run(
        request(LOG_NEW_PARTICIPANTS, workflow="wf-strikes", run="strike-2"), MemoryBindings()
    )
    assert again.status == "success"
    quarantine = sandbox.host_for(ORGANIZATION, quarantine=True)
    assert quarantine is not None and quarantine.pid not in {h.pid for h in sandbox.hosts() if h}
    # Only this account's offenders run there: below every account's hosts.
    assert os.getpriority(os.PRIO_PROCESS, quarantine.pid) == OFFENDER_NICE
    assert os.getpriority(os.PRIO_PROCESS, host_of(sandbox).pid) == HOST_NICE
