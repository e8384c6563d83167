"""What the sandbox refuses at run time, with real Deno, says what workflows do not get and what
to do instead, never Deno's "run again with the --allow-env flag": in the execution's error, its
stack, and the logs of code that catches the error and prints it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from itertools import count

import pytest

from services.workflow_runner.sandbox import RunOutcome, Sandbox, SandboxSettings
from tests.support.sandbox import MemoryBindings, request

pytestmark = pytest.mark.integration

CONFIG_ADVICE = "keep configuration in the workflow's code, or in a room store"
IMPORTS = "workflows cannot import modules at run time: a workflow is one module"
FILES = "a workflow has no file system; room data comes through the bindings"
RUNS = count()


@pytest.fixture(scope="module")
async def sandbox() -> AsyncIterator[Sandbox]:
    sandbox = Sandbox(SandboxSettings(max_hosts=2, wall_timeout_s=5.0))
    await sandbox.start()
    yield sandbox
    await sandbox.close()


async def run(sandbox: Sandbox, code: str, language: str = "js") -> RunOutcome:
    n = next(RUNS)
    return await sandbox.run(
        request(code, workflow=f"wf-refusal-{n}", run=f"refusal-{n}", language=language),
        MemoryBindings(),
    )


def assert_nothing_says_run_again(outcome: RunOutcome) -> None:
    text = str(outcome.error) + str(outcome.logs)
    assert "--allow" not in text and "run again" not in text, text


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('return await import("https://deno.land/x/mod.ts");', IMPORTS),
        ('return await import("jsr:@std/path");', IMPORTS),
        ('return await import("npm:left-pad");', f"{IMPORTS}"),
        ('return await import("./helpers.js");', f"{IMPORTS}"),
        (
            'return (await import("node:fs")).readFileSync("/etc/passwd", "utf8");',
            f"node:fs is not available in the workflow sandbox: {FILES}",
        ),
        (
            'return Deno.env.get("TOKEN");',
            "environment variables are not available in the workflow sandbox: "
            f"{CONFIG_ADVICE} the code reads with store.get(store, key)"
            ' (env access to "TOKEN" was refused)',
        ),
        ("return process.env.TOKEN;", CONFIG_ADVICE),
        ("return Deno.env.toObject();", "(env access was refused)"),
        (
            'return await Deno.readTextFile("/etc/passwd");',
            f"files are not available in the workflow sandbox: {FILES}",
        ),
        (
            'return await new Deno.Command("ls").output();',
            "subprocesses are not available in the workflow sandbox: call an HTTP API with fetch"
            ' instead ("ls" was refused)',
        ),
        ('return await new Deno.Command("/bin/ls").output();', "subprocesses are not available"),
        (
            'return await Deno.connect({ hostname: "127.0.0.1", port: 5432 });',
            "network access is not available in the workflow sandbox: call HTTP APIs with fetch",
        ),
        ("return Deno.hostname();", "system information is not available in the workflow sandbox"),
    ],
)
async def test_a_refusal_at_run_time_says_what_to_do_instead(
    sandbox: Sandbox, body: str, says: str
):
    outcome = await run(sandbox, f"export default async () => {{ {body} }};")
    assert outcome.status == "error" and outcome.error is not None
    assert says in outcome.error["message"], outcome.error
    assert_nothing_says_run_again(outcome)


@pytest.mark.parametrize("language", ["js", "ts"])
async def test_a_static_import_saved_before_the_check_names_the_module_not_a_missing_export(
    sandbox: Sandbox, language: str
):
    code = 'import { readFileSync } from "node:fs";\nexport default async () => readFileSync("/x");'
    outcome = await run(sandbox, code, language)
    assert outcome.status == "error" and outcome.error is not None
    message = outcome.error["message"]
    assert message.startswith(f"node:fs is not available in the workflow sandbox: {FILES}")
    assert "does not provide an export" not in message


async def test_code_that_catches_the_refusal_and_logs_it_logs_the_advice(sandbox: Sandbox):
    code = """
export default async () => {
  try { Deno.env.get("TOKEN"); } catch (error) { console.log(error); console.error(error.message); }
  setTimeout(() => Deno.env.get("LATER"), 0);
  await new Promise((resolve) => setTimeout(resolve, 50));
  return "done";
};"""
    outcome = await run(sandbox, code)
    assert outcome.status == "success" and outcome.result == "done"
    assert len(outcome.logs) == 3
    assert all(CONFIG_ADVICE in entry["message"] for entry in outcome.logs), outcome.logs
    assert outcome.logs[2]["message"].startswith("Uncaught environment variables")
    assert_nothing_says_run_again(outcome)


async def test_deno_apis_that_need_no_permission_still_work(sandbox: Sandbox):
    code = "export default async () => [typeof Deno.version.deno, Deno.inspect({ a: 1 })];"
    outcome = await run(sandbox, code, "ts")
    assert (outcome.status, outcome.result) == ("success", ["string", "{ a: 1 }"])
