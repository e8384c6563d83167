"""What an inbound event must be before a model sees it, and why it is refused.

Pure: stdlib and pydantic only. Text Postgres cannot hold (NUL, a lone UTF-16 surrogate,
written as JSON escapes):
- in an identifier (`id`, `event`, `timestamp`, `organization_id`, `room.id`, `user.id`,
  `users[i].id`) or an object key, the event is refused naming the field: ids derive delivery
  and run ids and route the event, so rewriting one would alias another;
- in any other string it is delivered as the visible six characters `\\u0000` / `\\ud800` (a
  backslash and five characters, as `shared.failures.storable_text` writes them), so the body
  stays storable in text and jsonb alike and JSON.stringify still reproduces it byte for byte.
Bytes that are not UTF-8 are not JSON text: refused, naming the field that holds them. A
document nested deeper than `MAX_DEPTH` is refused before it is parsed, at any depth.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from pydantic import ValidationError

from shared.events.catalog import CATALOG, EventBase

MAX_EVENT_BYTES = 1_000_000
MAX_DEPTH = 64
MAX_REASON_CHARS = 500
# Integers beyond this lose precision in a JavaScript Number, so JS would print other digits.
JS_MAX_SAFE_INTEGER = 2**53 - 1
# What Postgres text (and jsonb) refuse in a string: NUL and lone surrogates.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Invalid UTF-8 bytes, as `surrogateescape` decodes them.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
# A JSON string, or an unterminated one running to the end: always matches at a quote, so
# removing strings stays linear however the quotes and backslashes are arranged.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
# json.loads recurses once per level: under this many brackets in all it stays far from the
# interpreter's recursion limit (1000), and the walk after it measures the depth; above it the
# text is scanned first, so a deep document is refused before it is parsed.
_PARSE_SAFE_BRACKETS = 256
# The fields that identify or route an event: never rewritten, so refused when unstorable.
_IDENTIFIERS = frozenset(
    {("id",), ("event",), ("timestamp",), ("organization_id",), ("room", "id"), ("user", "id")}
)
# What sends a document down the checked path (`_parse_plain`): the escape of a NUL or of a
# surrogate, anywhere; and, between strings, NaN or Infinity, an exponent, or a number with
# 16 digits in a row (2**53 has 16) unless it is an integer within JavaScript's safe range
# (microsecond timestamps are such): the numbers JavaScript might not reproduce or Python
# reads as inf.
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
_UNSAFE_NUMBER = re.compile(r"[NI]|\d[eE]")
_LONG_NUMBER = re.compile(r"[.\d]*\d{16}[.\d]*")
_STRUCTURE = "{}[]:, \t\n\r"
# The first `"event": "<name>"` of the text (only a guess: the model checks it is the top
# level's).
_EVENT_NAME = re.compile(r'"event"\s*:\s*"([^"\\]{1,100})"')


class InvalidEvent(ValueError):
    """An event we cannot accept; `reason` names the field, e.g. `room.id: field required`.

    Permanent: the same bytes will always fail, so consumers send them to the DLQ.
    The reason names fields and at most a short event name, never other values: safe to log.
    `kind` is a short label for metrics: not_json, too_large, too_deep, unknown_event,
    unstorable_text (NUL, a lone surrogate or invalid UTF-8 where it may not be rewritten),
    invalid_field.
    """

    def __init__(self, reason: str, *, kind: str = "invalid_field") -> None:
        self.reason = _cap(reason)
        self.kind = kind
        super().__init__(self.reason)


def parse_event(
    raw: bytes | str | dict[str, Any], *, max_bytes: int = MAX_EVENT_BYTES
) -> EventBase:
    """Validate one inbound event; raise `InvalidEvent` naming the field that is wrong.

    Bytes must be UTF-8 JSON and, like str, at most `max_bytes` long and nested at most
    `MAX_DEPTH` deep. Besides the per-event schema, the whole document must be something
    JavaScript round-trips exactly: no NaN or Infinity, no integers beyond 2**53 - 1. NUL and
    lone surrogates are refused in identifiers and keys, and escaped elsewhere
    (the module's docstring says why).
    """
    if isinstance(raw, bytes):
        event = _parse_plain(raw, max_bytes)
        if event is not None:
            return event
    return _parse_checked(raw, max_bytes)


def _parse_plain(raw: bytes, max_bytes: int) -> EventBase | None:
    """The event, parsed and validated in one pass (pydantic's JSON parser, in Rust), when the
    text shows nothing that `_parse_checked` would refuse or rewrite; None when it might, or
    when it is not valid: the checked path then decides, and says why.

    Accepts what the checked path accepts, as the same model: UTF-8 within `max_bytes`; fewer
    brackets than MAX_DEPTH, so no deeper; no escaped NUL or surrogate, so nothing unstorable
    (raw control characters are not JSON to either parser); no number that is not plain (the
    two parsers read every other number alike). The model is the catalog's for the name
    found in the text, and `EventBase` refuses any model but the one of the top level's name.
    """
    if len(raw) > max_bytes:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if text.count("{") + text.count("[") >= MAX_DEPTH:
        return None
    # An escaped quote: which quotes delimit strings would take a scan.
    if "\\" in text and ('\\"' in text or _UNSTORABLE_ESCAPE.search(text)):
        return None
    between = "".join(text.split('"')[::2]).strip(_STRUCTURE)  # numbers and literals
    if between and (_UNSAFE_NUMBER.search(between) or not _long_numbers_safe(between)):
        return None
    name = _EVENT_NAME.search(text)
    spec = CATALOG.get(name.group(1)) if name is not None else None
    if spec is None:
        return None
    try:
        return spec.payload_model.model_validate_json(text)
    except ValidationError:
        return None


def _long_numbers_safe(between: str) -> bool:
    """True when every number of 16 digits or more in `between` is an integer JavaScript
    holds exactly (a fraction or a longer integer: the checked path decides)."""
    for number in _LONG_NUMBER.findall(between):
        if not number.isdigit() or int(number) > JS_MAX_SAFE_INTEGER:
            return False
    return True


def _parse_checked(raw: bytes | str | dict[str, Any], max_bytes: int) -> EventBase:
    """`parse_event` for any document, checking every value in Python first."""
    doc = _decode(raw, max_bytes) if isinstance(raw, bytes | str) else raw
    if not isinstance(doc, dict):
        raise InvalidEvent(f"event must be a JSON object, not {_json_type(doc)}", kind="not_json")
    if not _is_plain(doc, 0):
        doc = _checked(doc, (), 0)  # again, with paths: refuse naming the field, or escape
    name = doc.get("event")
    if name is None:
        raise InvalidEvent("event: field required")
    if not isinstance(name, str):
        raise InvalidEvent("event: input should be a valid string")
    spec = CATALOG.get(name)
    if spec is None:
        raise InvalidEvent(f"event: unknown event {name[:100]!r}", kind="unknown_event")
    try:
        return spec.payload_model.model_validate(doc)
    except ValidationError as exc:
        raise InvalidEvent(_describe(exc)) from None


def _decode(raw: bytes | str, max_bytes: int) -> object:
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise InvalidEvent(f"event too large: {size} bytes (limit {max_bytes})", kind="too_large")
    bad_byte = None
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            # Parse anyway (each bad byte a lone surrogate) only to name the field holding it.
            bad_byte, text = exc.start, raw.decode("utf-8", "surrogateescape")
    else:
        text = raw
    brackets = text.count("[") + text.count("{")
    if brackets > _PARSE_SAFE_BRACKETS and nested_deeper_than(text, MAX_DEPTH):
        raise InvalidEvent(f"event is nested deeper than {MAX_DEPTH} levels", kind="too_deep")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        if bad_byte is not None:
            reason = f"event is not valid UTF-8 (byte {bad_byte})"
            raise InvalidEvent(reason, kind="not_json") from None
        where = f"line {exc.lineno} column {exc.colno}"
        raise InvalidEvent(f"event is not JSON: {exc.msg} at {where}", kind="not_json") from None
    if bad_byte is not None:
        loc = _loc(_path_of_bad_bytes(doc, ()) or ())
        raise InvalidEvent(
            _at((loc,) if loc else (), f"not valid UTF-8 (byte {bad_byte})"),
            kind="unstorable_text",
        )
    return doc


def nested_deeper_than(text: str, limit: int) -> bool:
    """True when JSON `text` opens more than `limit` arrays or objects inside one another.

    Linear and without recursion, so no depth can exhaust a stack. Most events open fewer
    brackets in all than the limit, and one count of each settles them; only the others have
    their strings removed and their brackets counted.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    if '\\"' in text:  # an escaped quote: find where each string ends
        outside = _JSON_STRING.sub("", text)
    else:  # every quote opens or closes a string: the even parts are outside them
        outside = "".join(text.split('"')[::2])
    depth = 0
    for ch in _NOT_BRACKET.sub("", outside):
        if ch in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def _path_of_bad_bytes(value: object, path: tuple[str | int, ...]) -> tuple[str | int, ...] | None:
    """Where the first string holding an invalid byte is (`surrogateescape`d), if anywhere."""
    if isinstance(value, str):
        return path if _ESCAPED_BYTE.search(value) else None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        if isinstance(key, str) and _ESCAPED_BYTE.search(key):
            return path
        found = _path_of_bad_bytes(item, (*path, key))
        if found is not None:
            return found
    return None


def _is_plain(value: Any, depth: int) -> bool:
    """True when `value` breaks no rule and holds nothing to escape: the common case, checked
    without building paths (`_checked` walks again with paths when this says False)."""
    if isinstance(value, str):
        return "\x00" not in value if value.isascii() else _UNSTORABLE.search(value) is None
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            return False
        for key, item in value.items():
            if not isinstance(key, str) or not _is_plain(key, depth):
                return False
            if not _is_plain(item, depth + 1):
                return False
        return True
    if isinstance(value, list):
        if depth >= MAX_DEPTH:
            return False
        return all(_is_plain(item, depth + 1) for item in value)
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return abs(value) <= JS_MAX_SAFE_INTEGER
    if isinstance(value, float):
        return math.isfinite(value)
    return False


def _checked(value: Any, path: tuple[str | int, ...], depth: int) -> Any:
    """`value` checked for what JSON.parse/JSON.stringify would not reproduce exactly (or
    cannot encode), with unstorable text escaped where that is allowed: the same object when
    nothing changed, a copy otherwise (the caller's document is never modified)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if _UNSTORABLE.search(value) is None:
            return value
        if _is_identifier(path):
            raise InvalidEvent(_at(path, _unstorable_reason(value)), kind="unstorable_text")
        return escape_unstorable(value)
    if isinstance(value, int):
        if abs(value) > JS_MAX_SAFE_INTEGER:
            limit = f"±{JS_MAX_SAFE_INTEGER}"
            raise InvalidEvent(
                _at(path, f"integer outside JavaScript's safe range ({limit}); send a string")
            )
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidEvent(_at(path, "NaN and Infinity are not valid JSON numbers"))
        return value
    if isinstance(value, dict | list) and depth >= MAX_DEPTH:  # the document itself is level 1
        raise InvalidEvent(_at(path[:4], f"nested deeper than {MAX_DEPTH} levels"), kind="too_deep")
    if isinstance(value, dict):
        copy: dict[str, Any] | None = None
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidEvent(_at(path, "object keys must be strings"))
            if _UNSTORABLE.search(key):
                reason = _unstorable_reason(key).replace("string", "key", 1)
                raise InvalidEvent(_at(path, reason), kind="unstorable_text")
            checked = _checked(item, (*path, key), depth + 1)
            if checked is not item:
                if copy is None:
                    copy = dict(value)
                copy[key] = checked
        return value if copy is None else copy
    if isinstance(value, list):
        items: list[Any] | None = None
        for index, item in enumerate(value):
            checked = _checked(item, (*path, index), depth + 1)
            if checked is not item:
                if items is None:
                    items = list(value)
                items[index] = checked
        return value if items is None else items
    raise InvalidEvent(_at(path, f"{type(value).__name__} is not a JSON value"))


def _is_identifier(path: tuple[str | int, ...]) -> bool:
    if path in _IDENTIFIERS:
        return True
    return len(path) == 3 and path[0] == "users" and path[2] == "id"


def _unstorable_reason(text: str) -> str:
    if "\x00" in text:
        return "string contains NUL (U+0000), which an identifier may not hold"
    return "string contains a lone UTF-16 surrogate"


def escape_unstorable(text: str) -> str:
    """`text` with NUL and lone surrogates written as visible `\\u0000` / `\\ud800` escapes
    (the same characters `shared.failures.storable_text` writes)."""
    return _UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        message = error["msg"].removeprefix("Value error, ")
        message = message[:1].lower() + message[1:]
        parts.append(_at(error["loc"], message))
    return "; ".join(parts)


def _loc(path: tuple[str | int, ...]) -> str:
    """`users[0].id` for ('users', 0, 'id'); empty for the document itself."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f"{'.' if out else ''}{str(part)[:40]}"
    return out


def _at(path: tuple[str | int, ...], message: str) -> str:
    loc = _loc(path)
    return f"{loc}: {message}" if loc else message


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")


def _cap(text: str) -> str:
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."
