"""JSON exactly as JavaScript's `JSON.stringify` prints it, so receivers that re-serialize a
parsed body (the Express example of the CollabKit webhooks guide) get the very bytes that were
signed."""

from __future__ import annotations

import math
from json.encoder import encode_basestring
from typing import Any

_JS_MAX_ARRAY_INDEX = 2**32 - 2


def to_js_json(value: Any) -> str:
    """Serialize JSON-shaped data exactly as JavaScript's `JSON.stringify` would print it.

    Differences from `json.dumps` that matter for byte identity: numbers use JS's
    Number-to-string rules (1.0 -> 1, 1e-7 -> 1e-7, 1e16 -> 10000000000000000), and object keys
    that are array indices come first in ascending order, as in every JS object.
    """
    out: list[str] = []
    _emit(value, out)
    return "".join(out)


def _emit(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(encode_basestring(value))
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_js_number(value))
    elif isinstance(value, dict):
        out.append("{")
        for i, key in enumerate(_js_key_order(value)):
            out.append("," if i else "")
            out.append(encode_basestring(key))
            out.append(":")
            _emit(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            out.append("," if i else "")
            _emit(item, out)
        out.append("]")
    else:
        raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def _js_key_order(obj: dict[str, Any]) -> list[str]:
    indices = [k for k in obj if _is_array_index(k)]
    if not indices:
        return list(obj)
    named = [k for k in obj if not _is_array_index(k)]
    return sorted(indices, key=int) + named


def _is_array_index(key: str) -> bool:
    return (
        key.isdigit()
        and key.isascii()
        and (key == "0" or key[0] != "0")
        and int(key) <= _JS_MAX_ARRAY_INDEX
    )


def _js_number(x: float) -> str:
    """ECMAScript Number::toString(10) for a finite float.

    Python's repr and JS both print the shortest digits that round-trip; only the layout
    (where the decimal point goes, when to use an exponent) differs, so re-lay out repr's digits.
    """
    if not math.isfinite(x):
        raise ValueError("NaN and Infinity have no JSON form")
    if x == 0:
        return "0"  # also -0, as JSON.stringify prints it
    sign = "-" if x < 0 else ""
    mantissa, _, exponent = repr(abs(x)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    stripped = digits.lstrip("0")
    # x = 0.<stripped> * 10**n
    n = len(whole) + int(exponent or 0) - (len(digits) - len(stripped))
    s = stripped.rstrip("0")
    k = len(s)
    if k <= n <= 21:
        text = s + "0" * (n - k)
    elif 0 < n <= 21:
        text = s[:n] + "." + s[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * -n + s
    else:
        e = n - 1
        exp = f"e{'+' if e >= 0 else '-'}{abs(e)}"
        text = (s if k == 1 else s[0] + "." + s[1:]) + exp
    return sign + text
