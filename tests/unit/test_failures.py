"""The one rule for failures, and the readiness watches that report stuck loops."""

from __future__ import annotations

import json

import asyncpg
import pytest
from pydantic import BaseModel, ValidationError

from shared.failures import describe, is_content_error, storable_text, unstorable_at
from shared.readiness import BacklogWatch, FetchWatch, RetryWatch


def _postgres_error(sqlstate: str) -> asyncpg.PostgresError:
    cls = asyncpg.PostgresError.get_message_class_for_sqlstate(sqlstate) or asyncpg.PostgresError
    return cls(f"state {sqlstate}")


@pytest.mark.parametrize(
    ("sqlstate", "content"),
    [
        ("22021", True),  # a NUL byte in text
        ("22P05", True),  # \u0000 in jsonb
        ("22000", True),  # asyncpg could not encode the argument (a lone surrogate)
        ("23505", True),  # unique violation
        ("40001", False),  # serialization failure: retry
        ("57P01", False),  # admin shutdown: the server went away
        ("53300", False),  # too many connections
    ],
)
def test_postgres_errors_blame_the_row_only_in_classes_22_and_23(sqlstate, content):
    assert is_content_error(_postgres_error(sqlstate)) is content


def test_decoding_and_validation_failures_are_the_inputs_fault():
    class Shape(BaseModel):
        n: int

    with pytest.raises(ValidationError) as invalid:
        Shape.model_validate({"n": "x"})
    assert is_content_error(invalid.value)
    assert is_content_error(json.JSONDecodeError("bad", "x", 0))
    assert is_content_error(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"))


@pytest.mark.parametrize(
    "exc",
    [ConnectionResetError(), TimeoutError(), OSError("network down"), RuntimeError("bug")],
)
def test_outages_and_bugs_are_never_taken_for_poison(exc):
    assert not is_content_error(exc)


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("plain", "plain"),
        ("a\x00b", "a\\u0000b"),
        ("é\x00", "é\\u0000"),
        ("x\ud800y", "x\\ud800y"),
        ("\udfff", "\\udfff"),
        ("😀", "😀"),
    ],
)
def test_storable_text_writes_what_postgres_refuses_as_visible_escapes(text, stored):
    assert storable_text(text) == stored
    assert unstorable_at(storable_text(text)) is None
    storable_text(text).encode("utf-8")  # never raises


def test_unstorable_at_names_the_first_refused_character():
    assert unstorable_at("abc") is None
    assert unstorable_at("ab\x00c") == 2
    assert unstorable_at("é\ud83d") == 1


def test_describe_is_bounded_and_storable():
    reason = describe(ValueError("x\x00" * 1000), limit=100)
    assert len(reason) == 100 and "\x00" not in reason


def test_retry_watch_turns_red_past_its_limit_and_green_on_success():
    watch = RetryWatch("record attempts", limit=2)
    for _ in range(3):
        watch.failed("connection refused")
    assert "3 times" in watch.check() and "connection refused" in watch.check()
    watch.succeeded()
    assert watch.check() == "ok"


def test_backlog_watch_is_red_only_when_the_backlog_stops_shrinking():
    watch = BacklogWatch("attempt recorder", stall_s=60)
    watch.observe(10, now=0)
    watch.observe(8, now=50)  # shrinking: the clock starts again
    assert watch.check(now=100) == "ok"
    watch.observe(9, now=100)
    assert watch.check(now=111) != "ok"
    watch.observe(0, now=112)
    assert watch.check(now=500) == "ok"


def test_fetch_watch_is_red_only_while_there_is_work():
    watch = FetchWatch("consumer", stall_s=30)
    watch.fetched(now=0)
    assert watch.check(now=31, has_work=False) == "ok"
    assert "31 s" in watch.check(now=31, has_work=True)
    watch.fetched(now=31)
    assert watch.check(now=32, has_work=True) == "ok"
