"""How a sandbox host is launched, the cgroup placement, and compile_check's reading of Deno."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from services.workflow_runner.sandbox import CodeError
from services.workflow_runner.sandbox.cgroup import Cgroups
from services.workflow_runner.sandbox.compile_check import (
    NO_DEFAULT,
    default_export_problem,
    locate,
    parse_failure,
)
from services.workflow_runner.sandbox.launch import (
    BLOCKED_BUILTINS,
    WORKER_PRELUDE,
    host_command,
    host_env,
    import_map,
)


def test_the_host_runs_with_designs_flags_and_only_its_socket() -> None:
    sock = Path("/run/rh/host-0-1.sock")
    command = host_command("deno", socket=sock, import_map_path=Path("/m.json"), heap_mb=96, nice=7)
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
    env = host_env(Path("/tmp/d"))
    assert set(env) == {"DENO_DIR", "DENO_NO_UPDATE_CHECK", "NO_COLOR", "HOME"}


def test_the_import_map_blocks_the_builtins_the_prelude_denies() -> None:
    imports = import_map()["imports"]
    for name in BLOCKED_BUILTINS:
        assert "is not available" in unquote(imports[f"node:{name}"])
    # worker.js keeps its own list for process.getBuiltinModule: both must be equal.
    source = WORKER_PRELUDE.read_text()
    block = re.search(r"DENIED_BUILTINS = new Set\(\[(.*?)\]\)", source, re.S)
    assert block is not None
    assert set(re.findall(r'"([^"]+)"', block.group(1))) == set(BLOCKED_BUILTINS)
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
    cgroups = Cgroups(
        memory_max_mb=256, pids_max=64, root=root, proc_self_cgroup=tmp_path / "self", name="rh"
    )
    assert cgroups.prepare()
    own = root / "system.slice" / "runner.service"
    assert (own / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert cgroups.place("1-2", 4242)
    group = own / "rh-host-1-2"
    assert (group / "memory.max").read_text() == str(256 * 1024 * 1024)
    assert (group / "pids.max").read_text() == "64"
    assert (group / "cgroup.procs").read_text() == "4242"
    (group / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert cgroups.oom_kills("1-2") == 1


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


DENO_SYNTAX_ERROR = """\
Warning SyntaxError: Expected ',', got 'numeric literal (1, 1)'
  |
2 |   return 1
  |          ~
    at file:///tmp/rh-check-x/workflow.js:2:10
error: SyntaxError: Expected ',', got 'numeric literal (1, 1)'
  |
2 |   return 1
  |          ~
    at file:///tmp/rh-check-x/workflow.js:2:10
"""


def test_a_syntax_error_has_deno_s_message_and_1_based_position() -> None:
    error = parse_failure(DENO_SYNTAX_ERROR, "")
    assert (error.line, error.column) == (2, 10)
    assert error.message == "SyntaxError: Expected ',', got 'numeric literal (1, 1)'"
    assert str(error).startswith("line 2, column 10: SyntaxError")


def test_an_import_the_sandbox_cannot_load_points_at_its_specifier() -> None:
    code = 'import fs from "node:fs";\nimport _ from "npm:lodash";\nexport default () => 1;\n'
    stderr = "error: Failed resolving 'npm:lodash' from 'file:///tmp/x/workflow.js'.\n"
    error = parse_failure(stderr, code)
    assert "npm:lodash" in error.message and "node: built-in modules only" in error.message
    assert (error.line, error.column) == (2, 15)
    assert locate(code, "nowhere") == (None, None)


def doc(*declarations: dict, name: str = "default") -> dict:
    symbol = {"name": name, "isDefault": name == "default", "declarations": list(declarations)}
    return {"version": 2, "nodes": {"file:///w.js": {"symbols": [symbol]}}}


def var(ts_type: dict | None) -> dict:
    return {"kind": "variable", "def": {"kind": "const"} | ({"tsType": ts_type} if ts_type else {})}


@pytest.mark.parametrize(
    "document",
    [
        doc({"kind": "function", "def": {"isAsync": True}}),
        doc(var(None)),  # export default wrap(fn): cannot tell, the run will
        doc(var({"kind": "fnOrConstructor"})),
        doc(var({"kind": "typeRef", "repr": "Handler"})),
        doc(var({"kind": "typeLiteral", "value": {"callSignatures": [{}]}})),
    ],
)
def test_a_default_export_that_is_or_may_be_a_function_passes(document: dict) -> None:
    assert default_export_problem(document) is None


@pytest.mark.parametrize(
    "document",
    [
        {"version": 2, "nodes": {"file:///w.js": {"symbols": []}}},
        doc({"kind": "function"}, name="handler"),
        doc({"kind": "class", "def": {}}),
        doc(var({"kind": "literal", "repr": "42"})),
        doc(var({"kind": "keyword", "value": "number"})),
        doc(var({"kind": "typeLiteral", "value": {"methods": [{"name": "fetch"}]}})),
    ],
)
def test_no_default_export_or_a_certain_non_function_is_refused(document: dict) -> None:
    problem = default_export_problem(document)
    assert isinstance(problem, CodeError)
    assert (problem.message, problem.line, problem.column) == (NO_DEFAULT, None, None)


def test_code_error_is_a_value_error_with_its_position() -> None:
    error = CodeError("bad", 3, 4)
    assert isinstance(error, ValueError)
    assert json.dumps([error.message, error.line, error.column]) == '["bad", 3, 4]'
