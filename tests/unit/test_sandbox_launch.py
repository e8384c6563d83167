"""How a sandbox host is launched and the cgroup placement."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from urllib.parse import unquote

import pytest

from services.workflow_runner.app import sandbox_settings
from services.workflow_runner.sandbox.cgroup import Cgroups
from services.workflow_runner.sandbox.launch import (
    BLOCKED_BUILTINS,
    SYSTEM_PATH,
    WORKER_PRELUDE,
    host_command,
    host_env,
    import_map,
    link_host_tools,
    worker_prelude,
)
from services.workflow_runner.settings import RunnerSettings
from shared.sandbox_rules import blocked_builtin_message


def test_the_host_runs_with_designs_flags_and_only_its_socket() -> None:
    sock = Path("/run/rh/host-0-1.sock")
    command = host_command(socket=sock, import_map_path=Path("/m.json"), heap_mb=96, nice=7)
    assert command[:7] == ["prlimit", "--core=0", "nice", "-n", "7", "deno", "run"]
    for flag in (
        "--no-prompt",
        "--no-remote",
        "--cached-only",
        "--no-npm",
        "--no-config",
        "--unstable-worker-options",
        "--import-map=/m.json",
        f"--allow-read={sock}",
        f"--allow-write={sock}",
        f"--allow-net=unix:{sock}",
        "--v8-flags=--max-old-space-size=96",
    ):
        assert flag in command
    assert not [f for f in command if f.startswith("--allow") and str(sock) not in f]
    assert command[-2].endswith("host.ts") and command[-1] == str(sock)


def test_the_host_environment_holds_nothing_of_ours() -> None:
    env = host_env(Path("/tmp/d"), Path("/tmp/rh/bin"))
    assert set(env) == {"DENO_DIR", "DENO_NO_UPDATE_CHECK", "NO_COLOR", "HOME", "PATH"}
    assert env["PATH"] == "/tmp/rh/bin"


def test_the_hosts_exec_path_holds_the_three_tools_it_runs_and_nothing_else(
    tmp_path: Path,
) -> None:
    deno = tmp_path / "opt" / "deno-2.9.8"
    deno.parent.mkdir()
    deno.write_text("#!/bin/sh\n")
    deno.chmod(0o755)
    exec_path = link_host_tools(tmp_path / "bin", str(deno))
    assert sorted(p.name for p in exec_path.iterdir()) == ["deno", "nice", "prlimit"]
    assert (exec_path / "deno").resolve() == deno.resolve()
    assert (exec_path / "nice").resolve() == Path(shutil.which("nice", path=SYSTEM_PATH)).resolve()


def test_a_missing_deno_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs /nowhere/deno, which is not there"):
        link_host_tools(tmp_path / "bin", "/nowhere/deno")


def test_the_import_map_blocks_the_builtins_the_prelude_denies() -> None:
    imports = import_map()["imports"]
    for name in BLOCKED_BUILTINS:
        assert blocked_builtin_message(name) in unquote(imports[f"node:{name}"])
    # The prelude reads its list for process.getBuiltinModule from the same rules.
    prelude = worker_prelude()
    declared = re.match(r"const RULES = (.*);\n", prelude)
    assert declared is not None
    assert set(json.loads(declared.group(1))["blockedBuiltins"]) == set(BLOCKED_BUILTINS)
    assert prelude.endswith(WORKER_PRELUDE.read_text())
    assert "globalThis.process" in unquote(imports["node:process"])


def fake_cgroup_tree(tmp_path: Path, *, controllers: str = "cpu memory pids") -> Path:
    root = tmp_path / "cgroup"
    own = root / "system.slice" / "runner.service"
    own.mkdir(parents=True)
    (root / "cgroup.controllers").write_text(controllers)
    (own / "cgroup.controllers").write_text(controllers)
    (own / "cgroup.subtree_control").write_text("")
    (tmp_path / "self").write_text("0::/system.slice/runner.service\n")
    return root


def test_each_host_gets_a_cgroup_with_memory_and_pids_limits(tmp_path: Path) -> None:
    root = fake_cgroup_tree(tmp_path)
    cgroups = Cgroups(memory_max_mb=256, pids_max=64, root=root, proc_self_cgroup=tmp_path / "self")
    assert cgroups.prepare()
    own = root / "system.slice" / "runner.service"
    assert (own / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert cgroups.place("1-2", 4242)
    group = own / f"roomhooks-sandbox-{os.getpid()}-host-1-2"
    assert (group / "memory.max").read_text() == str(256 * 1024 * 1024)
    assert (group / "pids.max").read_text() == "64"
    assert (group / "cgroup.procs").read_text() == "4242"
    (group / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert cgroups.oom_kills("1-2") == 1


def test_hosts_go_below_the_cgroup_the_runners_environment_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The runner is in runner.service itself (no controllers below it): the deployment
    # delegated an empty cgroup beside it and named it.
    root = fake_cgroup_tree(tmp_path)
    delegated = root / "system.slice" / "roomhooks-hosts"
    delegated.mkdir()
    (delegated / "cgroup.controllers").write_text("memory pids")
    (delegated / "cgroup.subtree_control").write_text("")
    monkeypatch.setenv("ROOMHOOKS_WORKFLOWS_CGROUP_PARENT", str(delegated))
    monkeypatch.setenv("ROOMHOOKS_WORKFLOWS_PIDS_MAX", "96")
    settings = sandbox_settings(RunnerSettings())
    assert settings.cgroup_parent is not None
    cgroups = Cgroups(
        memory_max_mb=settings.memory_max_mb,
        pids_max=settings.pids_max,
        root=root,
        proc_self_cgroup=tmp_path / "self",
        parent=Path(settings.cgroup_parent),
    )
    assert cgroups.prepare() and cgroups.place("1-1", 4242)
    group = delegated / f"roomhooks-sandbox-{os.getpid()}-host-1-1"
    assert (group / "pids.max").read_text() == "96"
    assert (group / "cgroup.procs").read_text() == "4242"
    assert not (root / "system.slice" / "runner.service" / "cgroup.subtree_control").read_text()


@pytest.mark.parametrize(
    ("controllers", "reason"), [("cpu", "not available"), (None, "not mounted")]
)
def test_without_cgroup_v2_or_its_controllers_hosts_run_unconfined(
    tmp_path: Path, controllers: str | None, reason: str
) -> None:
    root = fake_cgroup_tree(tmp_path, controllers=controllers or "")
    if controllers is None:
        (root / "cgroup.controllers").unlink()
    cgroups = Cgroups(memory_max_mb=256, pids_max=64, root=root, proc_self_cgroup=tmp_path / "self")
    assert not cgroups.prepare()
    assert cgroups.reason is not None and reason in cgroups.reason
    assert not cgroups.place("0-1", 1)
    assert cgroups.oom_kills("0-1") == 0
