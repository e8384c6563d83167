"""What the sandbox refuses, decided in one place for the registry's check and the sandbox: which
imports and Deno APIs, and that each refusal says what to do instead."""

from __future__ import annotations

import pytest

from shared.sandbox_rules import (
    BLOCKED_BUILTINS,
    CAPABILITIES,
    DENO_APIS,
    PERMISSIONS,
    PERMITTED_DENO,
    deno_api_refusal,
    import_refusal,
    process_env_refusal,
    worker_rules,
)


@pytest.mark.parametrize(
    "specifier",
    ["node:crypto", "node:buffer", "node:path", "node:process", "data:text/javascript,export{}"],
)
def test_node_built_ins_the_sandbox_loads_and_data_urls_may_be_imported(specifier: str) -> None:
    assert import_refusal(specifier) is None


@pytest.mark.parametrize(
    ("specifier", "says"),
    [
        ("node:fs", "node:fs is not available in the workflow sandbox: a workflow has no file"),
        ("node:child_process", "call an HTTP API with fetch instead"),
        ("node:worker_threads", "a run has one thread"),
        ("node:v8", "a workflow gets its event, the bindings (store, room, files) and fetch"),
        ("lodash", "'lodash' cannot be loaded; a workflow is one module"),
        ("./helpers.js", "use the bindings (store, room, files) and fetch for the rest"),
        ("https://deno.land/x/mod.ts", "workflows cannot import modules"),
        ("npm:left-pad", "workflows cannot import modules"),
        ("jsr:@std/path", "workflows cannot import modules"),
        ("crypto", "a Node built-in is imported as 'node:crypto'"),
        ("node:nope", "'node:nope' is not a Node built-in module"),
    ],
)
def test_imports_the_sandbox_refuses_say_what_to_use_instead(specifier: str, says: str) -> None:
    refusal = import_refusal(specifier)
    assert refusal is not None and says in refusal


def test_every_blocked_built_in_is_refused_on_save() -> None:
    for name in BLOCKED_BUILTINS:
        assert import_refusal(f"node:{name}") is not None


@pytest.mark.parametrize("name", ["version", "build", "inspect", "errors", "memoryUsage"])
def test_deno_apis_that_need_no_permission_are_allowed(name: str) -> None:
    assert deno_api_refusal(name) is None


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("env", "Deno.env is not available in the workflow sandbox: keep configuration in the"),
        ("readTextFile", "a workflow has no file system"),
        ("Command", "call an HTTP API with fetch instead"),
        ("connect", "call HTTP APIs with fetch"),
        ("hostname", "a workflow sees its event and its bindings only"),
        ("dlopen", "JavaScript or TypeScript only"),
        ("stdout", "log with console.log"),
        ("exit", "a run ends when the default function returns"),
        ("somethingNewer", "Deno.somethingNewer is not available in the workflow sandbox"),
    ],
)
def test_denied_deno_apis_say_what_to_do_instead(name: str, says: str) -> None:
    refusal = deno_api_refusal(name)
    assert refusal is not None and says in refusal


def test_process_env_gets_the_same_advice_as_deno_env() -> None:
    assert process_env_refusal().endswith(CAPABILITIES["env"].advice)


def test_no_deno_api_is_both_permitted_and_refused() -> None:
    assert not PERMITTED_DENO & set(DENO_APIS)


def test_the_sandbox_gets_a_sentence_for_every_permission_deno_can_refuse() -> None:
    rules = worker_rules()
    for flag in ("env", "read", "write", "net", "run", "sys", "ffi", "import"):
        rule = rules["permissions"][flag]  # type: ignore[index]
        assert rule["denied"] and rule["advice"], flag
        assert "--allow" not in rule["denied"] + rule["advice"]
    assert set(rules["blockedBuiltins"]) == set(BLOCKED_BUILTINS)  # type: ignore[arg-type]
    assert set(PERMISSIONS.values()) <= set(CAPABILITIES)
