"""The README's walk-through as one bash script: its fenced `sh` blocks, in order (pure).

A `text` or `json` block is shown, not run; any other fence (none, `bash`) is refused, so that
no command is left out unnoticed. A `sh` block that must not run says so on the line just
above its fence, with the reason:

    <!-- walkthrough: skip: a reference of commands, not a step -->
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FENCE = re.compile(r"^```(?P<language>\S*)\s*$")
SKIP = re.compile(r"^<!--\s*walkthrough:\s*skip:\s*(?P<reason>.*?)\s*-->$")
RUN = "sh"
SHOWN = frozenset({"text", "json"})


@dataclass(frozen=True)
class Block:
    """One fenced block: its language, its text, its first line's number in the file."""

    language: str
    text: str
    line: int
    skip_reason: str | None = None


def section(markdown: str, heading: str) -> tuple[int, list[str]]:
    """The lines under `heading` up to the next heading of its level, and the number of the
    first of them (1-based)."""
    lines = markdown.splitlines()
    level = heading.split(" ", 1)[0] + " "
    try:
        start = lines.index(heading) + 1
    except ValueError:
        raise ValueError(f"no {heading!r} line") from None
    end = next((i for i in range(start, len(lines)) if lines[i].startswith(level)), len(lines))
    return start + 1, lines[start:end]


def fenced_blocks(lines: list[str], first_line: int = 1) -> list[Block]:
    """Every fenced block of `lines`, with the skip reason the line above its fence gives."""
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].rstrip() == "```"), None)
        if end is None:
            raise ValueError(f"line {first_line + i}: a fence that is never closed")
        above = SKIP.match(lines[i - 1].strip()) if i else None
        if above is not None and not above["reason"]:
            raise ValueError(f"line {first_line + i - 1}: a skip without a reason")
        blocks.append(
            Block(
                language=opening["language"],
                text="\n".join(lines[i + 1 : end]),
                line=first_line + i,
                skip_reason=above["reason"] if above else None,
            )
        )
        i = end + 1
    return blocks


def walkthrough_blocks(markdown: str, heading: str = "## Walk-through") -> list[Block]:
    """The `sh` blocks of the section that run, in order."""
    first_line, lines = section(markdown, heading)
    blocks = fenced_blocks(lines, first_line)
    for block in blocks:
        if block.language != RUN and block.language not in SHOWN:
            raise ValueError(
                f"line {block.line}: a {block.language or 'bare'} fence: say {RUN} to run it,"
                f" or one of {sorted(SHOWN)} to show it"
            )
    return [block for block in blocks if block.language == RUN and block.skip_reason is None]


def bash_script(blocks: list[Block], *, prologue: str = "", epilogue: str = "") -> str:
    """The blocks one after the other, each headed by the README line it starts on, between
    `prologue` and `epilogue` (the caller's own lines)."""
    parts = [f"# before the walk-through\n{prologue}"] if prologue else []
    parts += [f"# README.md line {block.line}\n{block.text}" for block in blocks]
    if epilogue:
        parts.append(f"# after the walk-through\n{epilogue}")
    return "\n\n".join(parts) + "\n"
