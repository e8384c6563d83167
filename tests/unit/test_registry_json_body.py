"""A tenant's JSON body: bounded depth and storable text, refused with the place at fault."""

from __future__ import annotations

import json

import pytest

from services.registry.json_body import BodyRefused, parse_body


def _refusal(raw: bytes) -> BodyRefused:
    with pytest.raises(BodyRefused) as caught:
        parse_body(raw)
    return caught.value


@pytest.mark.parametrize("depth", [65, 1_000, 5_000, 100_000])
def test_json_nested_deeper_than_64_is_refused_not_a_recursion_error(depth):
    refusal = _refusal(b"[" * depth + b"]" * depth)
    assert refusal.details == [{"field": "body", "message": "JSON nested deeper than 64 levels"}]


def test_json_nested_64_deep_is_read():
    value = parse_body(b'{"a":' * 63 + b"[1]" + b"}" * 63)
    assert isinstance(value, dict)


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        (r'{"name":"a\u0000b"}', "name", "must not contain NUL characters (\\u0000)"),
        (r'{"name":"\ud800"}', "name", "must not contain a lone surrogate (\\ud800)"),
        (r'{"events":["ok","x\udfff"]}', "events[1]", "lone surrogate (\\udfff)"),
        (r'{"a":{"b":[{"c":"\u0000"}]}}', "a.b[0].c", "NUL"),
        (r'{"k\u0000":1}', "k\\u0000", "a key must not contain NUL"),
        (r'"\ud83d"', "body", "lone surrogate"),
    ],
)
def test_unstorable_text_anywhere_is_refused_naming_its_place(raw, field, message):
    refusal = _refusal(raw.encode())
    assert [d["field"] for d in refusal.details] == [field]
    assert message in refusal.details[0]["message"]


def test_every_place_at_fault_is_named_in_order():
    refusal = _refusal(rb'{"url":"\u0000","name":"\ud800","roomId":"fine"}')
    assert [d["field"] for d in refusal.details] == ["url", "name"]


def test_a_surrogate_pair_is_text_like_any_other():
    assert parse_body(rb'{"name":"\ud83d\ude00"}') == {"name": "\U0001f600"}


@pytest.mark.parametrize("raw", [b"{", b"\xff\xfe", b"nope", b"[" + b"9" * 5_000 + b"]"])
def test_what_is_not_json_is_refused_as_such(raw):
    assert _refusal(raw).details == [{"field": "body", "message": "invalid JSON"}]


def test_a_wide_body_of_many_values_is_read():
    raw = json.dumps({"events": ["x"] * 100_000}).encode()
    assert len(parse_body(raw)["events"]) == 100_000
