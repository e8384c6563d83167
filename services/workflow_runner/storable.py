"""Pure: JSON values as Postgres `jsonb` takes them, and why a value had to be changed.

`jsonb` refuses `\\u0000` inside a string (SQLSTATE 22P05), a lone surrogate (22P02) and
NaN or Infinity, all of which Python's `json` reads and writes. A tenant's event, a room-state
value or a workflow's result may hold any of them: they are stored cleaned (NUL and lone
surrogates as the visible escapes of `shared.failures.storable_text`, a non-finite number as
null), never refused, so no write of ours fails on a value's content.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from shared.failures import storable_text

# In `json.dumps` text (ASCII): a NUL, or any surrogate escape. A surrogate pair (an emoji) is
# fine for jsonb but sends the value the slow way, which then keeps it as it is.
_SUSPECT = re.compile(r"\\u0000|\\ud[89a-f]", re.IGNORECASE)

ESCAPED = "NUL or lone surrogate escaped"
NON_FINITE = "NaN or Infinity stored as null"


@dataclass(frozen=True)
class Storable:
    """`text`: the JSON to cast to jsonb; `cleaned`: why it differs from the value (empty when
    it does not)."""

    text: str
    cleaned: tuple[str, ...] = ()


def storable_json(value: Any) -> Storable:
    """`value` as JSON text jsonb takes. Raises RecursionError when it is nested too deep to
    serialize at all (json.loads could not have read it either)."""
    try:
        text = json.dumps(value, allow_nan=False)
    except ValueError:  # NaN or Infinity
        text = ""
    if text and not _SUSPECT.search(text):
        return Storable(text)
    reasons: set[str] = set()
    text = json.dumps(_clean(value, reasons), allow_nan=False)
    return Storable(text, tuple(sorted(reasons)))


def storable_value(value: Any) -> tuple[Any, tuple[str, ...]]:
    """`value` cleaned as `storable_json` cleans it, as a Python value (for jsonb codecs)."""
    stored = storable_json(value)
    return (json.loads(stored.text) if stored.cleaned else value), stored.cleaned


def _clean(value: Any, reasons: set[str]) -> Any:
    if isinstance(value, str):
        return _text(value, reasons)
    if isinstance(value, float) and not math.isfinite(value):
        reasons.add(NON_FINITE)
        return None
    if isinstance(value, dict):
        return {_text(str(k), reasons): _clean(v, reasons) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v, reasons) for v in value]
    return value


def _text(text: str, reasons: set[str]) -> str:
    cleaned = storable_text(text)
    if cleaned != text:
        reasons.add(ESCAPED)
    return cleaned
