"""Properties of event parsing and rendering, for arbitrary text in every field (hypothesis).

Whatever a producer sends, `parse_event` refuses it with a reason, or the rendered body is
UTF-8 JSON that Postgres text and jsonb can hold and that JavaScript's
`JSON.stringify(JSON.parse(body))` reproduces byte for byte (checked with a real Node).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.events import (
    MAX_EVENT_BYTES,
    InvalidEvent,
    nested_deeper_than,
    parse_event,
    render_payload,
)
from shared.events.ingress import _parse_checked
from shared.failures import unstorable_at

KINDS = {"not_json", "too_large", "too_deep", "unknown_event", "unstorable_text", "invalid_field"}
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

# Any code point, lone surrogates included, with the troublesome ones drawn often.
CHARS = st.one_of(
    st.characters(exclude_categories=()),
    st.sampled_from(["\x00", "\ud800", "\udbff", "\udc80", "\udfff", "\x1f", "\u2028", '"', "\\"]),
)
TEXT = st.text(CHARS, max_size=12)
IDS = st.text(CHARS, min_size=1, max_size=12)
ENVELOPE = {"id", "event", "timestamp", "organization_id", "room", "user", "users", "data"}
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=12,
)
USERS = st.fixed_dictionaries(
    {"id": IDS, "name": TEXT, "token": TEXT}, optional={"profile": JSON_VALUES}
)
ROOMS = st.fixed_dictionaries({"id": IDS, "name": TEXT}, optional={"metadata": JSON_VALUES})
FREE_FORM = st.dictionaries(TEXT.filter(lambda k: k not in ENVELOPE), JSON_VALUES, max_size=3)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(["participant.joined", "session.closed", "meeting.started"]))
    doc: dict[str, Any] = {
        "id": draw(IDS),
        "event": name,
        "timestamp": "2026-05-29T10:06:00.000Z",
        "organization_id": draw(IDS),
        "room": draw(ROOMS),
    }
    if name == "session.closed":
        doc["users"] = draw(st.lists(USERS, max_size=3))
    else:
        doc["user"] = draw(USERS)
    if name == "meeting.started":
        doc.update(draw(FREE_FORM))
    return doc


def identifiers(doc: dict[str, Any]) -> list[str]:
    ids = [doc["id"], doc["organization_id"], doc["room"]["id"]]
    return ids + [u["id"] for u in [doc.get("user"), *doc.get("users", [])] if u]


def strings_in(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


class Node:
    """One Node process answering `JSON.stringify(JSON.parse(line))` for each line."""

    SCRIPT = (
        "const rl = require('readline').createInterface({input: process.stdin});"
        "rl.on('line', (l) => process.stdout.write(JSON.stringify(JSON.parse(l)) + '\\n'));"
    )

    def __init__(self) -> None:
        node = shutil.which("node")
        assert node, "node must be on PATH: byte identity with JavaScript is checked for real"
        self._process = subprocess.Popen(
            [node, "-e", self.SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )

    def roundtrip(self, body: bytes) -> bytes:
        assert b"\n" not in body and b"\r" not in body  # compact JSON escapes both
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(body + b"\n")
        self._process.stdin.flush()
        return self._process.stdout.readline().removesuffix(b"\n")

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=10)


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    process = Node()
    yield process
    process.close()


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(doc=events(), as_escapes=st.booleans())
def test_an_event_is_refused_with_a_reason_or_rendered_storable_and_javascript_identical(
    node, doc, as_escapes
):
    # As a producer sends it: unstorable characters as JSON escapes, or as raw (invalid) bytes.
    raw = (
        json.dumps(doc).encode()
        if as_escapes
        else json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")
    )
    unstorable_id = any(UNSTORABLE.search(text) for text in identifiers(doc))
    try:
        event = parse_event(raw)
    except InvalidEvent as exc:
        assert exc.reason and exc.kind in KINDS
        if unstorable_id:
            assert exc.kind == "unstorable_text"
        return
    assert not unstorable_id, "an id holding NUL or a lone surrogate must be refused"
    body = render_payload(event)
    text = body.decode("utf-8")  # strict: the body is valid UTF-8
    assert unstorable_at(text) is None  # Postgres text takes the body
    delivered = json.loads(text)
    assert not any(UNSTORABLE.search(s) for s in strings_in(delivered))  # and jsonb its parts
    assert (delivered["id"], delivered["organization_id"]) == (doc["id"], doc["organization_id"])
    assert node.roundtrip(body) == body


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.binary(max_size=40),
    depth=st.integers(0, 3000),
    opener=st.sampled_from([b"[", b'{"a":', b'["x",']),
)
def test_any_nesting_of_any_bytes_is_refused_with_a_reason_or_parsed_never_raised(
    prefix, depth, opener
):
    try:
        parse_event(prefix + opener * depth)
    except InvalidEvent as exc:
        assert exc.reason and exc.kind in KINDS


def depth_of(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


BRACKETY = st.text(st.sampled_from('[]{}"\\x'), max_size=6)
NESTED = st.recursive(
    BRACKETY,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(BRACKETY, inner, max_size=3),
)


@settings(max_examples=500, deadline=None)
@given(value=NESTED, limit=st.integers(0, 6), ascii_only=st.booleans())
def test_the_nesting_scan_agrees_with_the_parsed_depth(value, limit, ascii_only):
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert nested_deeper_than(text, limit) is (depth_of(value) > limit)


def outcome(parse: Any, raw: bytes) -> tuple[Any, ...]:
    """What a parse makes of `raw`: its refusal, or the model and every byte it delivers."""
    try:
        event = parse(raw)
    except InvalidEvent as exc:
        return ("refused", exc.reason, exc.kind)
    fields_set = (event.model_fields_set, getattr(event, "room", None), event.__pydantic_extra__)
    return ("parsed", type(event), event.model_dump(), fields_set, render_payload(event))


def checked(raw: bytes) -> Any:
    return _parse_checked(raw, MAX_EVENT_BYTES)


NUMBERS = st.one_of(
    st.floats(),  # NaN and +-Infinity too: json.dumps writes them as such
    st.integers(),
    st.integers(-(2**53) - 2, 2**53 + 2),
    st.sampled_from([1e999, -0.0, 0.1, 1.5e-7, 1e21, 123456789012345.6]),
)
OTHER_NAMES = st.sampled_from(["participant.joined", "session.started", "member.added", "x"])


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    doc=events(),
    as_escapes=st.booleans(),
    numbers=st.dictionaries(st.sampled_from(["n", "m"]), NUMBERS, max_size=2),
    where=st.sampled_from(["top", "room", "user"]),
    second_name=st.none() | OTHER_NAMES,
)
def test_the_one_pass_parse_and_the_checked_parse_agree_on_every_event(
    doc, as_escapes, numbers, where, second_name
):
    # The bytes a producer sends, with numbers anywhere and at times a second "event" key (the
    # last one counts): parse_event's one-pass path must accept exactly what the checked path
    # accepts, as the same model, and refuse the rest for the checked path's reason.
    target = doc if where == "top" or where not in doc else doc[where]
    target.update(numbers)
    raw = (
        json.dumps(doc).encode()
        if as_escapes
        else json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")
    )
    if second_name is not None:
        raw = raw[:-1] + f', "event": "{second_name}"}}'.encode()
    assert outcome(parse_event, raw) == outcome(checked, raw)
