"""One rule for failures: the input's fault, or the world's.

A deterministic failure (Postgres refuses the row's content, the message does not validate or
decode) fails the same way every time: record it with its reason, set the input aside, go on.
A transient one (a lost connection, a timeout, a serialization failure) may pass: retry it with
back-off. No loop re-runs one deterministic failure; see `is_content_error`.
"""

from __future__ import annotations

import json
import re

import asyncpg
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError

# SQLSTATE classes that blame the row, not the server: 22 data exception (a NUL byte, an
# encoding the column refuses, a value out of range), 23 integrity constraint violation.
_CONTENT_SQLSTATE_CLASSES = ("22", "23")


def is_content_error(exc: BaseException) -> bool:
    """True when `exc` says the input itself is at fault, so retrying it cannot help.

    asyncpg raises `DataError` (SQLSTATE 22000) on the client for text it cannot encode (a
    lone surrogate); the server answers 22021 for a NUL byte in text and 22P05 for `\\u0000`
    in jsonb. A connection lost mid-statement, a timeout or a 40001 serialization failure is
    not the row's fault and never counts here.
    """
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", None) or ""
        return state.startswith(_CONTENT_SQLSTATE_CLASSES)
    return isinstance(exc, ValidationError | json.JSONDecodeError | UnicodeError | RecursionError)


def describe(exc: BaseException, *, limit: int = 500) -> str:
    """A short, storable reason for a content failure (no NUL, bounded)."""
    state = getattr(exc, "sqlstate", None)
    text = f"{type(exc).__name__}{f' ({state})' if state else ''}: {exc}"
    return storable_text(text)[:limit]


def storable_text(text: str) -> str:
    """`text` with what Postgres `text` cannot hold written as visible escapes.

    NUL becomes `\\u0000` and a lone surrogate `\\udXXX`: six readable characters each, so
    the stored value shows what was there; every other character is kept as it is.
    """
    if text.isascii():
        return text.replace("\x00", "\\u0000") if "\x00" in text else text
    return "".join(_escape(ch) for ch in text)


def _escape(ch: str) -> str:
    code = ord(ch)
    if code == 0 or 0xD800 <= code <= 0xDFFF:
        return f"\\u{code:04x}"
    return ch


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable_at(text: str) -> int | None:
    """Index of the first character Postgres text refuses (NUL, lone surrogate), or None."""
    if text.isascii():
        index = text.find("\x00")
        return None if index < 0 else index
    # One regex pass: fanout checks every rendered body here, a loop per character cost 10x.
    found = _UNSTORABLE.search(text)
    return None if found is None else found.start()


class PoisonCounter:
    """`roomhooks_poison_inputs_total{service, kind}`: inputs set aside for their content."""

    def __init__(self, registry: CollectorRegistry, *, service: str) -> None:
        self._service = service
        self._counter = Counter(
            "roomhooks_poison_inputs_total",
            "Inputs set aside for their content (recorded with a reason, never retried).",
            ["service", "kind"],
            registry=registry,
        )

    def inc(self, kind: str, amount: int = 1) -> None:
        self._counter.labels(self._service, kind).inc(amount)
