"""Can this source run in the workflow sandbox? Decided by Deno's parser (swc), never by
running the code: the registry calls it on save, the workflow runner's sandbox before a run;
neither needs the other.

First the imports and Deno APIs the sandbox refuses (`code_facts`, judged by
`sandbox_rules`), then one short-lived `deno doc` (~20 ms): it parses, resolves static imports
offline (`--no-remote --no-npm`) and lists the exports with their kinds. What a parser cannot
see (early errors such as a redeclared `const`, what a call expression returns, a dynamic
`import()`, `Deno` reached through another name) shows up at the first run as an error outcome
instead, with the same advice.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shared.code_facts import Fact, could_hold_facts, read_facts, run_deno
from shared.sandbox_rules import deno_api_refusal, import_refusal, process_env_refusal

NO_DEFAULT = "the module must export a default function"

_LOCATION = re.compile(r"at file://\S*?:(\d+):(\d+)")
_UNRESOLVED = re.compile(r"Failed resolving '([^']*)'")
# Kinds of a default export that are certainly not callable.
_NOT_FUNCTIONS = {"class", "enum", "interface", "typeAlias", "namespace"}
_NOT_CALLABLE_KEYWORDS = {
    "number",
    "string",
    "boolean",
    "bigint",
    "symbol",
    "null",
    "undefined",
    "void",
    "never",
    "object",
}


class CodeError(ValueError):
    """The code cannot run: a syntax error (1-based line and column) or no default function."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column

    def __str__(self) -> str:
        if self.line is None:
            return self.message
        return f"line {self.line}, column {self.column}: {self.message}"


def deno_env(deno_dir: Path) -> dict[str, str]:
    """The whole environment of a deno process we start: nothing of ours leaks into it."""
    return {
        "DENO_DIR": str(deno_dir),
        "DENO_NO_UPDATE_CHECK": "1",
        "NO_COLOR": "1",
        "HOME": str(deno_dir),
    }


async def compile_check(code: str, language: str, *, deno_bin: str | None = None) -> None:
    """Raise CodeError(message, line, column) (1-based) for a syntax error, an import or a
    Deno API the sandbox refuses, CodeError(NO_DEFAULT) when no default export is a function."""
    deno = deno_bin or packaged_deno()
    suffix = ".ts" if language == "ts" else ".js"
    with tempfile.TemporaryDirectory(prefix="rh-check-") as tmp:
        workdir = Path(tmp)
        path = workdir / f"workflow{suffix}"
        path.write_text(code)
        env = deno_env(workdir / "deno")
        if could_hold_facts(code):
            refusal = sandbox_refusal(await read_facts(path, deno=deno, env=env, cwd=workdir))
            if refusal is not None:
                raise refusal
        returncode, out, err = await _deno_doc(deno, path, env=env, cwd=workdir)
    if returncode != 0:
        raise parse_failure(err.decode(errors="replace"), code)
    problem = default_export_problem(json.loads(out))
    if problem is not None:
        raise problem


async def _deno_doc(
    deno: str, path: Path, *, env: dict[str, str], cwd: Path
) -> tuple[int | None, bytes, bytes]:
    return await run_deno(
        deno,
        "doc",
        "--json",
        "--no-remote",
        "--no-npm",
        "--no-config",
        "--no-lock",
        str(path),
        env=env,
        cwd=cwd,
    )


def sandbox_refusal(facts: Sequence[Fact]) -> CodeError | None:
    """The first fact the sandbox would refuse at run time, as a CodeError at its place. A
    module that declares its own `Deno` (or `process`) names no global by it: best effort,
    whatever the scope, since the run says the same of what gets past."""
    hidden = {fact.name for fact in facts if fact.kind == "declares"}
    for fact in facts:
        message = None
        if fact.kind == "import" and fact.name is not None:
            message = import_refusal(fact.name)
        elif fact.kind == "deno" and fact.name is not None and "Deno" not in hidden:
            message = deno_api_refusal(fact.name)
        elif fact.kind == "process.env" and "process" not in hidden:
            message = process_env_refusal()
        if message is not None:
            return CodeError(message, fact.line, fact.column)
    return None


def packaged_deno() -> str:
    import deno  # the PyPI package: a Deno binary in a wheel

    return deno.find_deno_bin()


def parse_failure(stderr: str, code: str) -> CodeError:
    """CodeError from `deno doc`'s stderr: the last `error: ...` line and its location."""
    errors = [line[len("error: ") :] for line in stderr.splitlines() if line.startswith("error: ")]
    message = errors[-1].strip() if errors else (stderr.strip().splitlines() or ["unknown"])[-1]
    unresolved = _UNRESOLVED.search(message)
    if unresolved:
        specifier = unresolved.group(1)
        line, column = locate(code, specifier)
        message = import_refusal(specifier) or f"workflows cannot import {specifier!r}"
        return CodeError(message, line, column)
    # The location printed after the last error (the error repeats a warning's text).
    tail = stderr[stderr.rfind("error: ") :] if errors else stderr
    where = _LOCATION.search(tail)
    if where:
        return CodeError(message, int(where.group(1)), int(where.group(2)))
    return CodeError(message, None, None)


def locate(code: str, specifier: str) -> tuple[int | None, int | None]:
    """1-based line and column of the quoted `specifier` in `code`, if it is there."""
    for quote in ("'", '"', "`"):
        index = code.find(f"{quote}{specifier}{quote}")
        if index != -1:
            line = code.count("\n", 0, index) + 1
            column = index - (code.rfind("\n", 0, index) + 1) + 1
            return line, column
    return None, None


def default_export_problem(doc: dict[str, Any]) -> CodeError | None:
    """None when the default export is, or may be, a function; a CodeError when there is no
    default export or every declaration of it is certainly something else."""
    symbols = [
        symbol
        for node in (doc.get("nodes") or {}).values()
        for symbol in node.get("symbols", [])
        if symbol.get("isDefault") or symbol.get("name") == "default"
    ]
    declarations = [d for s in symbols for d in s.get("declarations", [])]
    if not declarations:
        return CodeError(NO_DEFAULT)
    if any(_maybe_function(d) for d in declarations):
        return None
    return CodeError(NO_DEFAULT)


def _maybe_function(declaration: dict[str, Any]) -> bool:
    kind = declaration.get("kind")
    if kind == "function":
        return True
    if kind in _NOT_FUNCTIONS:
        return False
    if kind == "variable":
        ts_type = (declaration.get("def") or {}).get("tsType")
        # No type: a call or another expression the parser cannot judge; the run will tell.
        return ts_type is None or not _certainly_not_callable(ts_type)
    return True  # a re-export and anything newer: the run will tell


def _certainly_not_callable(ts_type: dict[str, Any]) -> bool:
    kind, value = ts_type.get("kind"), ts_type.get("value")
    if kind in ("literal", "array", "tuple"):
        return True
    if kind == "keyword":
        return value in _NOT_CALLABLE_KEYWORDS
    if kind == "typeLiteral":
        return not (isinstance(value, dict) and value.get("callSignatures"))
    return False  # a type reference, a union, `any`, ...: may be a function
