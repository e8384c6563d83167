"""What a tenant's JSON body may hold before any model reads it: a bounded depth, and text
Postgres can store (no NUL, no lone surrogate; `json.loads` turns `"\\ud800"` into one)."""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class BodyRefused(ValueError):
    """The body cannot be read as the API's input; `details` names each place at fault."""

    def __init__(self, message: str, details: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


def parse_body(raw: bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """The body as JSON, or BodyRefused: not UTF-8 JSON, nested deeper than `max_depth`, or
    holding a NUL or a lone surrogate (in a value or a key)."""
    try:
        value = json.loads(raw)
    except RecursionError:
        # json's C scanner gives up near the interpreter's recursion limit (~1,000 deep).
        raise _too_deep(max_depth) from None
    except ValueError as exc:
        # JSONDecodeError, UnicodeDecodeError, and an integer of over 4,300 digits (Python's
        # int conversion limit) are all ValueErrors.
        raise BodyRefused(
            f"body: invalid JSON ({exc})", [{"field": "body", "message": "invalid JSON"}]
        ) from exc
    problems = _walk(value, max_depth)
    if problems:
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in problems)
        raise BodyRefused(summary, problems)
    return value


def unstorable_text(text: str) -> str | None:
    """Why Postgres text cannot hold `text`, or None when it can."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "must not contain NUL characters (\\u0000)"
    return f"must not contain a lone surrogate (\\u{ord(found.group()):04x})"


def _too_deep(max_depth: int) -> BodyRefused:
    message = f"JSON nested deeper than {max_depth} levels"
    return BodyRefused(f"body: {message}", [{"field": "body", "message": message}])


def _walk(value: Any, max_depth: int) -> list[dict[str, str]]:
    """Every unstorable string's place, first to last; depth checked without recursion."""
    problems: list[dict[str, str]] = []
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, str):
            reason = unstorable_text(node)
            if reason is not None:
                problems.append({"field": path or "body", "message": reason})
            continue
        if not isinstance(node, dict | list):
            continue
        if depth > max_depth:
            raise _too_deep(max_depth)
        if isinstance(node, list):
            children = [
                (item, f"{path}[{i}]", depth + 1)
                for i, item in enumerate(node)
                if isinstance(item, str | dict | list)
            ]
        else:
            children = []
            for key, item in node.items():
                reason = unstorable_text(key)
                shown = _visible(key)
                place = f"{path}.{shown}" if path else shown
                if reason is not None:
                    problems.append({"field": place, "message": "a key " + reason})
                children.append((item, place, depth + 1))
        stack.extend(reversed(children))
    return problems


def _visible(text: str) -> str:
    return _UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
