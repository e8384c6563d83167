"""What a workflow module imports and which Deno APIs it names, read from Deno's own parser:
`deno lint` with one rule of ours (code_facts.js), which reports facts and judges nothing.

It starts a JavaScript runtime (about 120 ms and 120 MB on deno 2.9.8, against 20 ms and
20 MB for `deno doc`), so it runs only on code whose text could hold such a fact at all
(`could_hold_facts`); the syntax tree decides, never the text. Code that does not parse has
no facts here: `deno doc` then names the syntax error.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PLUGIN = Path(__file__).with_name("code_facts.js")
RULE = "roomhooks/facts"
TIMEOUT_S = 10.0
# Every fact needs one of these words in the text (`export ... from` a re-export; an
# identifier may spell a letter as \uXXXX, which the parser reads as the letter).
_WORDS = ("import", "from", "require", "Deno", "process", "\\u")


@dataclass(frozen=True)
class Fact:
    """`kind` is "import" (name: the specifier), "deno" (name: the member of Deno),
    "process.env", or "declares" (name: Deno or process, declared by the module itself).
    Line and column are 1-based."""

    kind: str
    name: str | None
    line: int
    column: int


def could_hold_facts(code: str) -> bool:
    return any(word in code for word in _WORDS)


def lint_config() -> dict[str, Any]:
    """Our rule alone: no rule of deno's own (`tags: []`)."""
    return {"lint": {"plugins": [PLUGIN.as_uri()], "rules": {"tags": [], "include": [RULE]}}}


async def read_facts(path: Path, *, deno: str, env: dict[str, str], cwd: Path) -> list[Fact]:
    """The facts of the module at `path`, in source order; [] when it does not parse."""
    config = cwd / "lint.json"
    config.write_text(json.dumps(lint_config()))
    code, out, err = await run_deno(
        deno, "lint", "--json", f"--config={config}", str(path), env=env, cwd=cwd
    )
    try:
        report = json.loads(out)
    except ValueError:
        detail = err.decode(errors="replace").strip()[-500:]
        raise RuntimeError(f"deno lint failed ({code}): {detail}") from None
    return facts_of(report)


def facts_of(report: dict[str, Any]) -> list[Fact]:
    """The facts in `deno lint --json` output; none when the file did not parse."""
    if report.get("errors"):
        return []
    facts = []
    for diagnostic in report.get("diagnostics") or []:
        if diagnostic.get("code") != RULE:
            continue
        data = json.loads(diagnostic["message"])
        start = diagnostic["range"]["start"]
        facts.append(Fact(data["kind"], data.get("name"), start["line"], start["col"] + 1))
    return sorted(facts, key=lambda f: (f.line, f.column))


async def run_deno(
    deno: str, *args: str, env: dict[str, str], cwd: Path
) -> tuple[int | None, bytes, bytes]:
    """Run `deno <args>` without input; its exit code, stdout and stderr. RuntimeError when it
    has not answered within TIMEOUT_S (it is killed)."""
    proc = await asyncio.create_subprocess_exec(
        deno,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"deno {args[0]} did not answer in {TIMEOUT_S} s") from None
    return proc.returncode, out, err
