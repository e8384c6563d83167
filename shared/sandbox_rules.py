"""What workflow code may reach in the sandbox, and what a refusal tells the customer to do
instead. Pure.

The registry's code check refuses on save what the sandbox would refuse at run time (static
imports, `Deno.<api>`, `process.env`, found by Deno's parser); the sandbox says the same when
the code gets there anyway (a dynamic `import()`, a name the parser could not see), in place of
Deno's "run again with the --allow-env flag", which no customer can follow.
"""

from __future__ import annotations

from dataclasses import dataclass

# The node: built-ins a Worker must not load (measured on deno 2.9.8: threads that outlive
# terminate(), process-wide V8 flags, writes to the host's fds, require()): the sandbox's
# import map sends each to a module that throws.
BLOCKED_BUILTINS = (
    "child_process",
    "cluster",
    "fs",
    "fs/promises",
    "inspector",
    "inspector/promises",
    "module",
    "repl",
    "trace_events",
    "v8",
    "wasi",
    "worker_threads",
)

# `builtinModules` of node:module on deno 2.9.8: every name `node:<name>` resolves to.
NODE_BUILTINS = frozenset(
    "_http_agent _http_common _http_outgoing _http_server _stream_duplex _stream_passthrough "
    "_stream_readable _stream_transform _stream_writable _tls_common _tls_wrap assert "
    "assert/strict async_hooks buffer child_process cluster console constants crypto dgram "
    "diagnostics_channel dns dns/promises domain events fs fs/promises http http2 https "
    "inspector inspector/promises module net os path path/posix path/win32 perf_hooks process "
    "punycode querystring readline readline/promises repl sqlite stream stream/consumers "
    "stream/promises stream/web string_decoder sys test test/reporters timers "
    "timers/promises tls trace_events tty url util util/types v8 vm wasi worker_threads "
    "zlib".split()
)

# Members of the Deno namespace a Worker with permissions "none" uses as it likes: they need
# no permission and the sandbox does not lock them. Any other `Deno.<name>` is refused.
PERMITTED_DENO = frozenset(
    "args build cpuUsage customInspect cwd errors execPath inspect mainModule memoryUsage "
    "noColor permissions PermissionStatus Permissions pid ppid refTimer SeekMode unrefTimer "
    "version".split()
)


@dataclass(frozen=True)
class Capability:
    """Something workflows do not get: `denied` says so (a sentence's subject and verb),
    `advice` what to do instead."""

    denied: str
    advice: str


IMPORT_ADVICE = (
    "a workflow is one module, which may import node: built-ins such as node:crypto; use the "
    "bindings (store, room, files) and fetch for the rest"
)
CAPABILITIES = {
    "env": Capability(
        "environment variables are not available in the workflow sandbox",
        "keep configuration in the workflow's code, or in a room store the code reads with "
        "store.get(store, key)",
    ),
    "files": Capability(
        "files are not available in the workflow sandbox",
        "a workflow has no file system; room data comes through the bindings store.get, "
        "store.getAll and files.list",
    ),
    "net": Capability(
        "network access is not available in the workflow sandbox",
        "call HTTP APIs with fetch (public addresses only)",
    ),
    "run": Capability(
        "subprocesses are not available in the workflow sandbox",
        "call an HTTP API with fetch instead",
    ),
    "threads": Capability(
        "threads are not available in the workflow sandbox",
        "a run has one thread: await fetch and binding calls to do work concurrently",
    ),
    "sys": Capability(
        "system information is not available in the workflow sandbox",
        "a workflow sees its event and its bindings only",
    ),
    "ffi": Capability(
        "native code is not available in the workflow sandbox",
        "a workflow runs JavaScript or TypeScript only",
    ),
    "stdio": Capability(
        "standard input and output are not available in the workflow sandbox",
        "log with console.log and return the result",
    ),
    "process": Capability(
        "the process is not available in the workflow sandbox",
        "a run ends when the default function returns",
    ),
    "internals": Capability(
        "the runtime's internals are not available in the workflow sandbox",
        "a workflow gets its event, the bindings (store, room, files) and fetch",
    ),
    "import": Capability("workflows cannot import modules at run time", IMPORT_ADVICE),
}
# Deno's permission flags (`--allow-<name>`) as the capabilities they grant.
PERMISSIONS = {
    "env": "env",
    "read": "files",
    "write": "files",
    "net": "net",
    "run": "run",
    "sys": "sys",
    "ffi": "ffi",
    "import": "import",
}


def _names(capability: str, names: str) -> dict[str, str]:
    return dict.fromkeys(names.split(), capability)


DENO_APIS = {
    **_names("env", "env"),
    **_names(
        "files",
        "chdir chmod chmodSync chown chownSync copyFile copyFileSync create createSync FsFile "
        "link linkSync lstat lstatSync makeTempDir makeTempDirSync makeTempFile "
        "makeTempFileSync mkdir mkdirSync open openKv openSync readDir readDirSync readFile "
        "readFileSync readLink readLinkSync readTextFile readTextFileSync realPath "
        "realPathSync remove removeSync rename renameSync stat statSync symlink symlinkSync "
        "truncate truncateSync umask utime utimeSync watchFs writeFile writeFileSync "
        "writeTextFile writeTextFileSync",
    ),
    **_names(
        "net",
        "connect connectQuic connectTls createHttpClient HttpClient listen listenDatagram "
        "listenQuic listenTls QuicEndpoint resolveDns serve serveHttp startTls "
        "upgradeWebSocket",
    ),
    **_names("run", "ChildProcess Command Process run spawn spawnAndWait spawnAndWaitSync"),
    **_names(
        "sys", "gid hostname loadavg networkInterfaces osRelease osUptime systemMemoryInfo uid"
    ),
    **_names("ffi", "dlopen UnsafeCallback UnsafeFnPointer UnsafePointer UnsafePointerView"),
    **_names("stdio", "consoleSize isatty stderr stdin stdout"),
    **_names("process", "addSignalListener exit exitCode kill removeSignalListener"),
}
BUILTIN_CAPABILITIES = {
    "child_process": "run",
    "cluster": "run",
    "fs": "files",
    "fs/promises": "files",
    "worker_threads": "threads",
}
GENERIC = CAPABILITIES["internals"]


def deno_api_refusal(name: str) -> str | None:
    """Why the code may not use `Deno.<name>`, and what to do instead; None: it may."""
    if name in PERMITTED_DENO:
        return None
    advice = CAPABILITIES[DENO_APIS[name]].advice if name in DENO_APIS else GENERIC.advice
    return f"Deno.{name} is not available in the workflow sandbox: {advice}"


def process_env_refusal() -> str:
    return f"process.env is not available in the workflow sandbox: {CAPABILITIES['env'].advice}"


def import_refusal(specifier: str) -> str | None:
    """Why a static import of `specifier` cannot load in the sandbox; None: it can."""
    if specifier.startswith("data:"):
        return None  # code inline: the sandbox loads it, and judges what it imports in turn
    if specifier.startswith("node:"):
        name = specifier[len("node:") :]
        if name in BLOCKED_BUILTINS:
            return blocked_builtin_message(name)
        if name in NODE_BUILTINS:
            return None
        return f"workflows cannot import modules: {specifier!r} is not a Node built-in module"
    if specifier in NODE_BUILTINS:
        return (
            f"workflows cannot import modules: {specifier!r} cannot be loaded; a Node built-in "
            f"is imported as 'node:{specifier}'"
        )
    return f"workflows cannot import modules: {specifier!r} cannot be loaded; {IMPORT_ADVICE}"


def blocked_builtin_message(name: str) -> str:
    """What a workflow that imports the blocked built-in `node:<name>` is told."""
    capability = CAPABILITIES[BUILTIN_CAPABILITIES.get(name, "internals")]
    return f"node:{name} is not available in the workflow sandbox: {capability.advice}"


def worker_rules() -> dict[str, object]:
    """What the sandbox's Worker prelude needs to say the same at run time (worker.js)."""
    return {
        "blockedBuiltins": {name: blocked_builtin_message(name) for name in BLOCKED_BUILTINS},
        "permissions": {
            flag: {"denied": CAPABILITIES[c].denied, "advice": CAPABILITIES[c].advice}
            for flag, c in PERMISSIONS.items()
        },
        "imports": {
            "denied": CAPABILITIES["import"].denied,
            "advice": CAPABILITIES["import"].advice,
        },
    }
