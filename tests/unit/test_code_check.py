"""The code check's reading of Deno: its errors, their positions, and the default export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.code_check import (
    NO_DEFAULT,
    CodeError,
    default_export_problem,
    deno_env,
    locate,
    parse_failure,
)


def test_deno_runs_with_an_environment_that_holds_nothing_of_ours() -> None:
    env = deno_env(Path("/tmp/d"))
    assert env == {
        "DENO_DIR": "/tmp/d",
        "DENO_NO_UPDATE_CHECK": "1",
        "NO_COLOR": "1",
        "HOME": "/tmp/d",
    }


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
    assert "'npm:lodash' cannot be loaded" in error.message
    assert "use the bindings (store, room, files) and fetch" in error.message
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
