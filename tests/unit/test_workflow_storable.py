"""JSON values as Postgres jsonb takes them: what it refuses is stored cleaned, with why."""

from __future__ import annotations

import json

import pytest

from services.workflow_runner.storable import (
    ESCAPED,
    NON_FINITE,
    storable_json,
    storable_value,
)


@pytest.mark.parametrize(
    "value",
    [
        {"name": "Ada", "n": 1, "ok": True, "none": None, "list": [1.5, "é"]},
        "an emoji 😀 is a surrogate pair in JSON text, and jsonb takes it",
        "a backslash-u0000 written out: \\u0000",
        [],
    ],
)
def test_a_value_jsonb_takes_is_written_as_it_is(value) -> None:
    stored = storable_json(value)
    assert stored.cleaned == ()
    assert json.loads(stored.text) == value


@pytest.mark.parametrize(
    ("value", "stored", "why"),
    [
        ("x\x00y", "x\\u0000y", ESCAPED),
        ({"name": "Ada\x00"}, {"name": "Ada\\u0000"}, ESCAPED),
        ({"ke\x00y": 1}, {"ke\\u0000y": 1}, ESCAPED),
        (["a\ud800"], ["a\\ud800"], ESCAPED),
        ({"deep": [{"n": "\udfff"}]}, {"deep": [{"n": "\\udfff"}]}, ESCAPED),
        ({"n": float("nan"), "m": float("inf")}, {"n": None, "m": None}, NON_FINITE),
    ],
)
def test_what_jsonb_refuses_is_stored_cleaned_with_the_reason(value, stored, why) -> None:
    result = storable_json(value)
    assert json.loads(result.text) == stored
    assert result.cleaned == (why,)
    assert "\\u0000" not in result.text.replace("\\\\u0000", "")  # only the visible escape
    assert storable_value(value) == (stored, (why,))


def test_a_clean_value_comes_back_as_the_same_object() -> None:
    value = {"a": [1, 2]}
    cleaned, why = storable_value(value)
    assert cleaned is value and why == ()
