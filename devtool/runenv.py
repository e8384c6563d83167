"""`.roomhooks/run.env`: what `roomhooks dev` saves for shells and the CLI, and reading it back.

Values are shell-quoted so the file can be `source`d; it holds API keys, so it is written
readable by its owner only.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path


def render_run_env(values: Mapping[str, str]) -> str:
    """Shell-sourceable `export NAME=value` lines, each value quoted with shlex.quote."""
    lines = ["# Written by `roomhooks dev`; load it into a shell with `. <this file>`."]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in values.items()]
    return "\n".join(lines) + "\n"


def parse_run_env(text: str) -> dict[str, str]:
    """`export NAME=value` / `NAME=value` lines (shell quoting) -> {NAME: value}.

    Blank lines and `#` comments are skipped; a line that is not an assignment raises
    ValueError naming its number.
    """
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from None
        if words[:1] == ["export"]:
            words = words[1:]
        for word in words:
            name, sep, value = word.partition("=")
            if not sep or not name.isidentifier():
                raise ValueError(f"line {number}: expected NAME=value")
            values[name] = value
    return values


def write_private_file(path: Path, text: str) -> None:
    """Replace `path` atomically with `text`, readable by its owner only (it holds keys)."""
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


# The account `roomhooks dev` made, saved in run.env for the commands that take `--account`.
ACCOUNT_SETTING = "ROOMHOOKS_ACCOUNT_ID"


def saved_account(environ: Mapping[str, str], saved: Mapping[str, str]) -> str | None:
    """ROOMHOOKS_ACCOUNT_ID from the environment, else from run.env's values; None: neither."""
    return environ.get(ACCOUNT_SETTING) or saved.get(ACCOUNT_SETTING) or None
