"""The code check with real Deno refuses on save what the sandbox would refuse at run time (static
imports it cannot load, Deno APIs it denies, process.env), at the place in the code, with what to
do instead; what only looks alike (a comment, a string, another object's `env`) passes."""

from __future__ import annotations

import pytest

from shared.code_check import CodeError, compile_check

pytestmark = pytest.mark.integration

CONFIG_ADVICE = "keep configuration in the workflow's code, or in a room store"


@pytest.mark.parametrize(
    ("code", "language", "says", "line", "column"),
    [
        (
            'import { readFileSync } from "node:fs";\nexport default () => readFileSync("x");',
            "js",
            "node:fs is not available in the workflow sandbox: a workflow has no file system",
            1,
            30,
        ),
        (
            'import fs from "node:fs";\nexport default (e: unknown) => fs;',
            "ts",
            "node:fs is not available in the workflow sandbox",
            1,
            16,
        ),
        (
            'export default () => 1;\nexport { chunk } from "./helpers.js";',
            "js",
            "workflows cannot import modules: './helpers.js' cannot be loaded",
            2,
            23,
        ),
        (
            'import "https://deno.land/x/polyfill.ts";\nexport default () => 1;',
            "ts",
            "use the bindings (store, room, files) and fetch for the rest",
            1,
            8,
        ),
        (
            'import type { Event } from "./types.ts";\nexport default (e: Event) => 1;',
            "ts",
            "workflows cannot import modules: './types.ts' cannot be loaded",
            1,
            28,
        ),
        (
            "export default async () => {\n  const token = Deno.env.get('TOKEN');\n};",
            "js",
            f"Deno.env is not available in the workflow sandbox: {CONFIG_ADVICE}",
            2,
            17,
        ),
        (
            "export default async (): Promise<string> => {\n  return Deno.env.get('T')!;\n};",
            "ts",
            "Deno.env is not available in the workflow sandbox",
            2,
            10,
        ),
        (
            "export default async () => {\n  const { env } = Deno;\n  return env.get('T');\n};",
            "js",
            "Deno.env is not available in the workflow sandbox",
            2,
            11,
        ),
        (
            "export default async () => await Deno.readTextFile('/etc/passwd');",
            "js",
            "Deno.readTextFile is not available in the workflow sandbox: a workflow has no file",
            1,
            34,
        ),
        (
            "export default async () => new Deno.Command('ls').output();",
            "ts",
            "Deno.Command is not available in the workflow sandbox",
            1,
            32,
        ),
        (
            "export default async () => globalThis.Deno.connect({ port: 5432 });",
            "js",
            "Deno.connect is not available in the workflow sandbox: call HTTP APIs with fetch",
            1,
            28,
        ),
        (
            "export default async () => process.env.API_KEY;",
            "js",
            f"process.env is not available in the workflow sandbox: {CONFIG_ADVICE}",
            1,
            28,
        ),
    ],
)
async def test_what_the_sandbox_refuses_is_refused_on_save_where_it_is(
    code: str, language: str, says: str, line: int, column: int
) -> None:
    with pytest.raises(CodeError) as caught:
        await compile_check(code, language)
    assert says in caught.value.message
    assert (caught.value.line, caught.value.column) == (line, column)
    assert "--allow" not in caught.value.message


@pytest.mark.parametrize(
    ("code", "language"),
    [
        # Comments and strings are not code.
        ('// Deno.env.get("TOKEN") is not for workflows\nexport default () => 1;', "js"),
        ('/* import fs from "node:fs"; */\nexport default () => "Deno.env";', "js"),
        ("export default () => `process.env.${'TOKEN'} and Deno.readFile`;", "ts"),
        # Another object's `env`, or a property named Deno.
        ("const config = { env: 'prod' };\nexport default () => config.env;", "js"),
        ("const o = { Deno: { env: 1 } };\nexport default () => o.Deno.env;", "ts"),
        # What the sandbox gives: node: built-ins it loads, Deno APIs that need no permission.
        (
            "import { createHash } from 'node:crypto';\n"
            "export default () => createHash('sha256').update('x').digest('hex');",
            "js",
        ),
        ("export default () => [Deno.version.deno, Deno.inspect({ a: 1 })];", "ts"),
        ("import process from 'node:process';\nexport default () => process.version;", "js"),
        # A module's own `Deno` is not the global one.
        ("export default (event, Deno = { env: {} }) => Deno.env;", "js"),
        # A dynamic import() is judged at run time.
        ("export default async () => (await import('node:crypto')).randomUUID();", "js"),
    ],
)
async def test_what_only_looks_alike_passes(code: str, language: str) -> None:
    await compile_check(code, language)
