"""The hostile workflows of the sandbox scenario: the sandbox's threat list and more, each with how
it ends when the sandbox holds.

A contained run ends `error` or `timeout` with a reason that says why (`expected`); where the
attack can see whether it worked, it returns what it got, so a breach ends `success` and fails
the scenario. Any of them may also be stopped at the CPU limit (CPU_LIMIT): on a loaded machine
the synchronous part of an attack (5,000 promises, a 50 MB string, a bomb's allocations) can
keep its Worker's event loop blocked that long; stopped, so contained. Or at the wall time
(WALL_TIME): a blocked Worker runs at the lowest priority, and on a busy machine it may not
get 500 ms of CPU time within the 5 s of wall time; stopped too. A run may also end as
the collateral of another hostile run that crashed the host both shared (COLLATERAL):
contained and recorded too, only not by its own reason.
"""

from __future__ import annotations

from dataclasses import dataclass

# Stands in the code for the local receiver's URL (replaced when the workflow is seeded).
FETCH_URL = "FETCH_URL"
# The KV entry the binding-result attack reads: a JSON object whose only key is "__proto__".
POLLUTING_KEY = ("settings", "pollute")
POLLUTING_VALUE = {"__proto__": {"polluted": "yes"}}
WALL_TIME = "(wall time) and was stopped"
CPU_LIMIT = "cpu limit: the workflow ran"
OUT_OF_MEMORY = "the sandbox crashed (out of memory"
COLLATERAL = "the sandbox crashed ("  # the host died under it (a bomb, or killed: wedged)


@dataclass(frozen=True)
class Hostile:
    name: str
    code: str
    status: str  # how it ends when contained
    expected: str  # a part of the recorded error message; for `success`, of the result


def _js(body: str) -> str:
    return f"export default async (event, {{ store, room }}) => {{\n{body}\n}};\n"


HOSTILE: tuple[Hostile, ...] = (
    Hostile("loop, synchronous", _js("while (true) {}"), "timeout", CPU_LIMIT),
    Hostile("loop after an await", _js("await null;\nwhile (true) {}"), "timeout", CPU_LIMIT),
    Hostile(
        "loop while the module loads",
        "while (true) {}\nexport default async () => 1;\n",
        "timeout",
        CPU_LIMIT,
    ),
    Hostile(
        "loop in a timer while the run waits",
        _js("setTimeout(() => { for (;;) {} }, 10);\nawait new Promise(() => {});"),
        "timeout",
        CPU_LIMIT,
    ),
    Hostile(
        "a promise that never settles", _js("await new Promise(() => {});"), "timeout", WALL_TIME
    ),
    Hostile(
        "Atomics.wait forever",
        "const cell = new Int32Array(new SharedArrayBuffer(4));\n"
        "export default async () => { Atomics.wait(cell, 0, 0); };\n",
        "timeout",
        WALL_TIME,  # blocked, using no CPU: stopped at the wall time, the run's or the loop's
    ),
    Hostile(
        "timers left running",
        _js(
            'setInterval(() => { console.log("tick"); room.get().catch(() => {}); }, 1);\n'
            "setTimeout(() => { for (;;) {} }, 100);\n"
            'throw new Error("returned, its timers still running");'
        ),
        "error",
        "its timers still running",
    ),
    Hostile(
        "heap bomb",
        _js("const kept = [];\nwhile (true) kept.push(new Array(1e5).fill(1));"),
        "error",
        OUT_OF_MEMORY,
    ),
    Hostile(
        "ArrayBuffer bomb (3 GB, outside the JS heap)",
        _js(
            "const kept = [];\n"
            "for (let i = 0; i < 48; i++) kept.push(new Uint8Array(64 << 20).fill(1));\n"
            "return `kept ${kept.length * 64} MB`;"
        ),
        "error",
        OUT_OF_MEMORY,
    ),
    Hostile(
        "WebAssembly memory bomb (3 GB)",
        _js(
            "const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536 });\n"
            "for (let i = 0; i < 48; i++) {\n"
            "  memory.grow(1024);\n"
            "  new Uint8Array(memory.buffer).fill(1, 65536 + i * (64 << 20));\n"
            "}\n"
            "return `grew to ${memory.buffer.byteLength >> 20} MB`;"
        ),
        "error",
        OUT_OF_MEMORY,
    ),
    Hostile(
        "nested Worker",
        _js('new Worker("data:text/javascript,for(;;){}", { type: "module" });'),
        "error",
        "Worker is not defined",
    ),
    Hostile(
        "node:worker_threads",
        _js(
            'const { Worker } = await import("node:worker_threads");\n'
            'new Worker("for(;;){}", { eval: true });'
        ),
        "error",
        "node:worker_threads is not available in the workflow sandbox",
    ),
    Hostile(
        "Deno.internal core ops",
        _js(
            'const internal = Deno[Symbol.for("Deno.internal")] ?? Deno[Deno.internal];\n'
            "return Object.keys(internal.core.ops).length;"
        ),
        "error",
        "Cannot read properties of undefined",
    ),
    Hostile(
        "the global through a binding's constructor",
        _js(
            'const global = store.get.constructor("return this")();\n'
            'return await global.Deno.readTextFile("/etc/passwd");'
        ),
        "error",
        'read access to "/etc/passwd"',
    ),
    Hostile(
        "Object.prototype.then (ended the whole host on deno 2.9.8)",
        _js("Object.prototype.then = function () {};\nreturn await room.get();"),
        "error",
        "Cannot redefine property: then",
    ),
    Hostile(
        "Object.prototype.toJSON on the result",
        _js(
            'Object.prototype.toJSON = function () { return "x".repeat(1 << 20); };\n'
            "return { ok: true };"
        ),
        "error",
        "result too large",
    ),
    Hostile(
        "__proto__ in a binding result",
        _js(
            f'const value = await store.get("{POLLUTING_KEY[0]}", "{POLLUTING_KEY[1]}");\n'
            'if (({}).polluted !== undefined) return "Object.prototype polluted";\n'
            "throw new Error(`__proto__ stayed data: ${JSON.stringify(value)}`);"
        ),
        "error",
        '__proto__ stayed data: {"__proto__":{"polluted":"yes"}}',
    ),
    Hostile(
        "__proto__ and constructor keys in the result",
        _js(
            "return JSON.parse("
            '\'{"__proto__": {"polluted": "yes"}, "constructor": {"prototype": {"p": 1}}}\');'
        ),
        "success",  # nothing to refuse: the recorded result must hold them as plain keys
        '"__proto__": {"polluted": "yes"}',
    ),
    Hostile(
        "huge logs and a 10 MB error message",
        _js(
            'const line = "y".repeat(1024);\n'
            "for (let i = 0; i < 100000; i++) console.log(line);\n"
            'throw new Error("z".repeat(10_000_000));'
        ),
        "error",
        "zzzz",
    ),
    Hostile("50 MB result", _js('return "x".repeat(50_000_000);'), "error", "result too large"),
    Hostile(
        "3,000 fetches at once",
        _js(
            f'await Promise.all(Array.from({{ length: 3000 }}, () => fetch("{FETCH_URL}")));\n'
            'return "all fetched";'
        ),
        "error",
        "fetch limit reached",
    ),
    Hostile(
        "5,000 binding calls at once",
        _js(
            "await Promise.all(Array.from({ length: 5000 }, () => room.get()));\n"
            'return "all called";'
        ),
        "error",
        "binding call limit reached",
    ),
    Hostile(
        "deep recursion",
        _js("const down = (n) => down(n + 1) + 1;\nreturn down(0);"),
        "error",
        "Maximum call stack size exceeded",
    ),
    Hostile(
        "fetch of the cloud metadata address",
        _js('return await (await fetch("http://169.254.169.254/latest/meta-data/")).text();'),
        "error",
        "refused",
    ),
    Hostile(
        "SIGKILL to the host",
        _js('Deno.kill(Deno.pid, "SIGKILL");\nreturn "sent";'),
        "error",
        "Deno.kill is not available in the workflow sandbox",
    ),
    Hostile(
        "a channel to other workflows' Workers",
        _js('new BroadcastChannel("roomhooks").postMessage("hello");\nreturn "posted";'),
        "error",
        "BroadcastChannel is not defined",
    ),
)
