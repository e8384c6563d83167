"""The code check's reading of the facts Deno's parser reports (imports, `Deno.<api>`,
`process.env`): which one the sandbox would refuse, where, and when a lint run is needed at all."""

from __future__ import annotations

import json

from shared.code_check import sandbox_refusal
from shared.code_facts import RULE, Fact, could_hold_facts, facts_of


def diagnostic(fact: dict, line: int, col: int, code: str = RULE) -> dict:
    return {
        "range": {"start": {"line": line, "col": col, "bytePos": 0}},
        "message": json.dumps(fact),
        "code": code,
    }


def test_facts_come_in_source_order_with_1_based_columns() -> None:
    report = {
        "diagnostics": [
            diagnostic({"kind": "deno", "name": "env"}, 3, 12),
            diagnostic({"kind": "import", "name": "node:fs"}, 1, 29),
            diagnostic({"kind": "whatever"}, 1, 0, code="no-unused-vars"),
        ],
        "errors": [],
    }
    assert facts_of(report) == [Fact("import", "node:fs", 1, 30), Fact("deno", "env", 3, 13)]


def test_a_module_that_does_not_parse_has_no_facts() -> None:
    report = {"diagnostics": [], "errors": [{"message": "Expected ','"}]}
    assert facts_of(report) == []


def test_the_first_refused_fact_is_the_refusal_with_its_position() -> None:
    facts = [
        Fact("import", "node:crypto", 1, 20),
        Fact("deno", "version", 2, 5),
        Fact("deno", "env", 3, 9),
        Fact("import", "lodash", 4, 15),
    ]
    refusal = sandbox_refusal(facts)
    assert refusal is not None
    assert (refusal.line, refusal.column) == (3, 9)
    assert refusal.message.startswith("Deno.env is not available in the workflow sandbox")


def test_a_module_with_its_own_deno_or_process_names_no_global() -> None:
    declared = [Fact("declares", "Deno", 1, 23), Fact("deno", "env", 1, 32)]
    assert sandbox_refusal(declared) is None
    declared = [Fact("declares", "process", 1, 10), Fact("process.env", None, 2, 3)]
    assert sandbox_refusal(declared) is None
    other = [Fact("declares", "Deno", 1, 23), Fact("process.env", None, 2, 3)]
    refusal = sandbox_refusal(other)
    assert refusal is not None and refusal.message.startswith("process.env is not available")


def test_allowed_imports_and_apis_are_no_refusal() -> None:
    facts = [Fact("import", "node:buffer", 1, 1), Fact("deno", "inspect", 2, 1)]
    assert sandbox_refusal(facts) is None


def test_only_code_that_could_hold_a_fact_is_linted() -> None:
    assert not could_hold_facts("export default async (event) => ({ ok: true });")
    for code in (
        'import { createHash } from "node:crypto";',
        'export * from "./x.js";',
        "export default () => Deno.env;",
        "export default () => process.env;",
        "export default () => \\u0044eno.env;",
    ):
        assert could_hold_facts(code), code
