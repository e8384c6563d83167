"""The code check with real Deno: its parser accepts modules with a default function and refuses
what cannot run, with the position of the fault. No sandbox is started."""

from __future__ import annotations

import pytest

from shared.code_check import CodeError, compile_check
from tests.support.sandbox import LOG_NEW_PARTICIPANTS

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("code", "language"),
    [
        (LOG_NEW_PARTICIPANTS, "js"),
        ("export default function named(event) { return 1; }", "js"),
        ("export default async (event) => 1;", "js"),
        ("export default (event) => 1;", "js"),
        ("const f = async (event) => 1;\nexport default f;", "js"),
        ("const f = wrap(async () => 1);\nexport default f;", "js"),
        ("import { Buffer } from 'node:buffer';\nexport default () => Buffer.from('x');", "js"),
        ("export default async function (e: { data: unknown }): Promise<void> {}", "ts"),
    ],
)
async def test_compile_check_accepts_modules_with_a_default_function(code: str, language: str):
    await compile_check(code, language)


@pytest.mark.parametrize(
    ("code", "language", "message", "line", "column"),
    [
        ("export default async function( {\n  return 1\n}\n", "js", "SyntaxError", 2, 10),
        ("export default async function(e: number) {}", "js", "SyntaxError", 1, 32),
        ("export const x = 1;", "js", "the module must export a default function", None, None),
        ("export default 42;", "js", "the module must export a default function", None, None),
        ("export default class {}", "ts", "the module must export a default function", None, None),
        ("import _ from 'npm:lodash';\nexport default () => 1;", "js", "npm:lodash", 1, 15),
    ],
)
async def test_compile_check_refuses_what_cannot_run(code, language, message, line, column):
    with pytest.raises(CodeError) as caught:
        await compile_check(code, language)
    assert message in caught.value.message
    assert (caught.value.line, caught.value.column) == (line, column)
