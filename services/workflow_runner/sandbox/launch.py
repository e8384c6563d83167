"""How a host process is started: its command line, environment, import map and exec path.
Pure, but for the two files the sandbox writes once as it starts (`write_import_map`,
`link_host_tools`).

The command is the launch line in the sandbox's README.md, behind `prlimit` and `nice`, plus
one flag, `--import-map`: the map sends the node: built-ins a Worker must not load to modules
that throw. Measured on deno 2.9.8, with
permissions "none" a Worker could still (1) start threads through node:worker_threads that
keep running after terminate(), (2) set process-wide V8 flags through node:v8, (3) write the
host's fds 1 and 2 through node:fs, and (4) get require() through node:module. Deno's own
permissions already refuse file, network, env and subprocess access; node:process is
replaced by the Worker's locked `process` (see worker.js).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import quote

from shared.code_check import deno_env
from shared.sandbox_rules import BLOCKED_BUILTINS, blocked_builtin_message, worker_rules

PACKAGE_DIR = Path(__file__).parent
HOST_SCRIPT = PACKAGE_DIR / "host.ts"
WORKER_PRELUDE = PACKAGE_DIR / "worker.js"

# A host runs customer code below the runner, Postgres and the broker (nice 0): however busy
# its Workers are, the platform that records their runs keeps the CPU it needs. The nice of
# its process, and of its scheduling group where Linux has autogroups (autogroup.py).
HOST_NICE = 5
# The hosts that carry only the runs of an account that struck (its quarantine, the reruns after
# it crashed its host: hosts are placed per account) run at the lowest priority, below every
# other account's hosts: its attack costs the others as little CPU as it can.
OFFENDER_NICE = 19


# node:process' named exports (deno 2.9.8), all read from the locked global `process`.
PROCESS_EXPORTS = (
    "abort allowedNodeEnvironmentFlags arch argv argv0 availableMemory chdir constrainedMemory "
    "cpuUsage cwd dlopen emitWarning env execArgv execPath exit getActiveResourcesInfo "
    "getBuiltinModule getegid geteuid getgid getuid hrtime kill loadEnvFile memoryUsage "
    "nextTick pid platform ppid removeAllListeners removeListener report resourceUsage "
    "setegid seteuid setgid setuid stderr stdin stdout threadCpuUsage umask version versions"
).split()


def _module(source: str) -> str:
    return "data:application/javascript," + quote(source, safe="")


def import_map() -> dict[str, dict[str, str]]:
    imports = {
        f"node:{name}": _module(
            f"throw new TypeError({json.dumps(blocked_builtin_message(name))});"
        )
        for name in BLOCKED_BUILTINS
    }
    imports["node:process"] = _module(
        "const p = globalThis.process;\nexport default p;\n"
        f"export const {{ {', '.join(PROCESS_EXPORTS)} }} = p;\n"
    )
    return {"imports": imports}


def worker_prelude() -> str:
    """worker.js, after the `RULES` it reads: what the sandbox refuses and what to say instead
    (shared/sandbox_rules.py), the same words the registry's code check uses on save."""
    return f"const RULES = {json.dumps(worker_rules())};\n{WORKER_PRELUDE.read_text()}"


def write_import_map(directory: Path) -> Path:
    path = directory / "import_map.json"
    path.write_text(json.dumps(import_map(), indent=1))
    return path


def host_command(
    *,
    socket: Path,
    import_map_path: Path,
    heap_mb: int,
    nice: int = HOST_NICE,
    script: Path = HOST_SCRIPT,
) -> list[str]:
    """`--cached-only` holds for a local script: it only forbids fetching remote modules.

    util-linux' `prlimit` forbids core dumps: a host that V8 kills at its heap limit (a heap
    bomb) aborts, and where the system keeps cores (systemd-coredump, a container host's
    core_pattern) each would write one the size of the host, as often as an account can
    make it. coreutils' `nice` sets the priority. Each execs the next (same pid), so every
    thread the host starts inherits both. Not a `preexec_fn`: with one, Python must fork its
    whole process instead of vfork, which stalled the runner's event loop for tens of ms per
    host started under load (measured in `make chaos`'s sandbox scenario). All three are found
    by name on the host's exec path (`host_env`), which holds nothing else: Deno's name is all
    its code learns of where it lives (node's `process.argv0`, the name it was started by,
    cannot be redefined), and a workflow's `Deno.Command` probing for a tool's name finds only
    these three (it is refused either way)."""
    return [
        "prlimit",
        "--core=0",
        "nice",
        "-n",
        str(nice),
        "deno",
        "run",
        "--no-prompt",
        "--no-remote",
        "--cached-only",
        "--no-npm",
        "--no-config",
        f"--import-map={import_map_path}",
        "--unstable-worker-options",
        f"--allow-read={socket}",
        f"--allow-write={socket}",
        f"--allow-net=unix:{socket}",
        f"--v8-flags=--max-old-space-size={heap_mb}",
        str(script),
        str(socket),
    ]


def host_env(deno_dir: Path, exec_path: Path) -> dict[str, str]:
    """The whole environment of a host, as the code check gives deno: nothing of ours leaks;
    `exec_path` is the directory of `HOST_TOOLS` (`link_host_tools`)."""
    return {**deno_env(deno_dir), "PATH": str(exec_path)}


# What `host_command` runs by name, and where the system's tools are looked for.
HOST_TOOLS = ("prlimit", "nice", "deno")
SYSTEM_PATH = "/usr/bin:/bin"


def link_host_tools(directory: Path, deno: str) -> Path:
    """`directory` made the hosts' exec path: a link to each of `HOST_TOOLS` (Deno: the
    binary `deno`; the others: the system's); ValueError naming a tool not found."""
    directory.mkdir()
    for name in HOST_TOOLS:
        target = shutil.which(deno) if name == "deno" else shutil.which(name, path=SYSTEM_PATH)
        if target is None:
            where = deno if name == "deno" else f"{name} on {SYSTEM_PATH}"
            raise ValueError(f"the workflow sandbox needs {where}, which is not there")
        (directory / name).symlink_to(Path(target).resolve())
    return directory
