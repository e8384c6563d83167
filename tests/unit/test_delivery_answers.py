"""Whatever an endpoint answers becomes a storable result: tables of hostile answers, and
properties over arbitrary statuses, header values and body bytes."""

from __future__ import annotations

import gzip
import zlib
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.delivery.answers import answered, decode_body, describe_status, redirect_error
from services.delivery.policy import AttemptResult, Outcome, parse_retry_after
from shared.failures import unstorable_at
from shared.ssrf import AddressPolicy

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DEV = AddressPolicy.build(allow_loopback=True, allowed_networks=[])
PRODUCTION = AddressPolicy.build(allow_loopback=False, allowed_networks=[])


def storable(text: str | None) -> bool:
    """Postgres text takes it: no NUL, no lone surrogate, so it encodes as UTF-8."""
    if text is None:
        return True
    text.encode("utf-8")
    return unstorable_at(text) is None


def answer(status: int, headers: dict[str, str] | None = None, body: bytes = b"", **kw):
    return answered(
        status,
        headers or {},
        body,
        started_at=NOW,
        duration_ms=5,
        body_limit=kw.pop("limit", 4096),
        policy=kw.pop("policy", DEV),
        **kw,
    )


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (b"boom\x00after", "boom\\u0000after"),
        (b"bad \xff\xfe \xc3\x28", "bad \\xff\\xfe \\xc3("),
        ("caf\u00e9 \u2603".encode(), "caf\u00e9 \u2603"),
        (b"", ""),
    ],
    ids=["nul-escaped", "invalid-utf8-as-hex", "utf8-kept", "empty"],
)
def test_a_body_is_stored_readably_whatever_its_bytes(raw, shown):
    assert decode_body(raw, content_encoding=None, limit=100) == shown


def test_a_gzip_body_sent_anyway_is_shown_decompressed():
    body = decode_body(gzip.compress(b"accepted"), content_encoding="gzip", limit=100)
    assert body == "[gzip body, shown decompressed] accepted"


@pytest.mark.parametrize("compress", [zlib.compress, lambda b: zlib.compress(b)[2:-4]])
def test_a_deflate_body_is_shown_decompressed_with_or_without_its_zlib_header(compress):
    body = decode_body(compress(b"fine"), content_encoding="deflate", limit=100)
    assert body == "[deflate body, shown decompressed] fine"


def test_a_compression_bomb_inflates_no_further_than_the_cap():
    bomb = gzip.compress(b"\x00" * 50_000_000)
    assert len(bomb) < 100_000
    body = decode_body(bomb, content_encoding="gzip", limit=64)
    assert len(body) == 64 and storable(body)


def test_a_body_that_claims_gzip_but_is_not_is_shown_as_received():
    body = decode_body(b"plain \x00", content_encoding="gzip", limit=100)
    assert body == "[gzip body that does not decompress, shown as received] plain \\u0000"


def test_a_body_in_another_coding_is_marked_and_shown_as_received():
    assert decode_body(b"\x8b\x00", content_encoding="br", limit=100) == (
        "[br body, shown as received] \\x8b\\u0000"
    )


@pytest.mark.parametrize("value", ["²", "١٢", "1.5", "-5", "soon", "", "99999999999", "Fri, 99"])
def test_a_malformed_retry_after_is_ignored(value):
    assert parse_retry_after(value, status_code=429, now=NOW) is None


def test_a_malformed_retry_after_leaves_the_429_a_plain_retried_failure():
    result = answer(429, {"Retry-After": "²"}, b"slow down")
    assert result.outcome is Outcome.HTTP_ERROR and result.retry_after_s is None
    assert result.error == "HTTP 429 Too Many Requests"


@pytest.mark.parametrize(
    ("location", "error"),
    [
        ("http://[::1", "redirect to http://[::1 not followed; the Location is not a valid URL"),
        ("http://a\x00b/", "redirect to http://a\\u0000b/ not followed"),
        (None, "redirect to (no Location) not followed"),
    ],
)
def test_a_malformed_location_is_recorded_as_such(location, error):
    assert redirect_error(location, PRODUCTION).startswith(error)


def test_a_410_says_the_webhook_is_disabled():
    result = answer(410, body=b"gone")
    assert result.outcome is Outcome.GONE
    assert result.error == "HTTP 410 Gone: the webhook is disabled"
    assert describe_status(599) == "HTTP 599"


def test_a_body_that_breaks_off_makes_a_network_error_that_keeps_the_status():
    result = answer(200, body=b"par", body_error="its body did not end within 10 s")
    assert result.outcome is Outcome.NETWORK_ERROR and result.status_code == 200
    assert result.error == "HTTP 200 OK answered, then its body did not end within 10 s"
    assert result.response_body == "par"


# --- properties -------------------------------------------------------------------------------

# Header values as aiohttp hands them over: bytes decoded as UTF-8 with surrogateescape, so a
# value may hold any code point, lone surrogates included.
header_text = st.one_of(
    st.text(max_size=60),
    st.binary(max_size=60).map(lambda b: b.decode("utf-8", errors="surrogateescape")),
    st.sampled_from(["²", "http://[::1", "0", "120", "Fri, 29 May 2026 10:01:00 GMT", "\x00"]),
)
codings = st.one_of(st.none(), st.sampled_from(["gzip", "deflate", "br", "identity"]), header_text)


def assert_storable(result: AttemptResult) -> None:
    assert isinstance(result, AttemptResult)
    assert storable(result.error) and storable(result.response_body)


@settings(max_examples=300, deadline=None)
@given(
    status=st.integers(min_value=100, max_value=999),
    retry_after=st.one_of(st.none(), header_text),
    location=st.one_of(st.none(), header_text),
    coding=codings,
    body=st.binary(max_size=300),
    limit=st.integers(min_value=0, max_value=200),
)
def test_any_answer_becomes_a_storable_result_and_nothing_raises(
    status, retry_after, location, coding, body, limit
):
    headers = {
        name: value
        for name, value in (
            ("Retry-After", retry_after),
            ("Location", location),
            ("Content-Encoding", coding),
        )
        if value is not None
    }
    result = answer(status, headers, body, limit=limit, policy=PRODUCTION)
    assert_storable(result)
    assert result.status_code == status
    assert len(result.response_body or "") <= limit
    assert result.retry_after_s is None or result.retry_after_s >= 0


@settings(max_examples=300, deadline=None)
@given(value=header_text, status=st.sampled_from([429, 503]))
def test_parse_retry_after_never_raises(value, status):
    seconds = parse_retry_after(value, status_code=status, now=NOW)
    assert seconds is None or 0 <= seconds


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=500), coding=codings, limit=st.integers(0, 300))
def test_decode_body_is_storable_and_within_the_cap(raw, coding, limit):
    text = decode_body(raw, content_encoding=coding, limit=limit)
    assert storable(text) and len(text) <= limit


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=300))
def test_decoding_keeps_every_valid_utf8_body_as_it_is(raw):
    text = raw.decode("utf-8", errors="ignore").replace("\x00", "")
    assert decode_body(text.encode(), content_encoding=None, limit=10_000) == text
