"""What an endpoint's answer comes to, decided in pure code: no socket, no database.

Whatever the endpoint sends (any status, any header bytes, any body) becomes an
`AttemptResult` whose text fields Postgres `text` takes: bodies are decoded as UTF-8 with
invalid bytes shown as `\\xNN` and NUL as `\\u0000`; a gzip or deflate body (sent although
we ask for `identity`) is shown decompressed, never more than the cap; a malformed
`Retry-After` is ignored and a malformed `Location` is named as such. Nothing here raises.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from datetime import datetime
from http import HTTPStatus

from yarl import URL

from services.delivery.policy import AttemptResult, Outcome, classify, parse_retry_after
from shared.failures import storable_text
from shared.ssrf import AddressPolicy, guard_message

# Longest error text kept (a status line or header the endpoint sent may be quoted in it).
ERROR_MAX_CHARS = 1000
_LOCATION_SHOWN = 500


def describe_status(status: int) -> str:
    """`HTTP 503 Service Unavailable`; a 410 says what it did: the webhook is disabled."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    text = f"HTTP {status} {phrase}".rstrip()
    return f"{text}: the webhook is disabled" if status == 410 else text


def redirect_error(location: str | None, policy: AddressPolicy) -> str:
    """A 3xx is never followed; say where it pointed, and whether the guard refuses that."""
    shown = storable_text((location or "(no Location)")[:_LOCATION_SHOWN])
    error = f"redirect to {shown} not followed"
    if not location:
        return error
    try:
        host = URL(location).host
    except (ValueError, TypeError, UnicodeError):
        return f"{error}; the Location is not a valid URL"
    refusal = policy.host_refusal(host) if host else None
    return f"{error}; {guard_message(refusal)}" if refusal else error


def decode_body(raw: bytes, *, content_encoding: str | None, limit: int) -> str:
    """The answer body as storable text of at most `limit` characters.

    We ask for `Accept-Encoding: identity`; a body compressed anyway (gzip, deflate) is
    inflated to at most `limit` bytes (a small bomb stays small) and marked as such; another
    coding is shown as received, marked; bytes that are not UTF-8 are shown as `\\xNN`.
    """
    if limit <= 0:
        return ""
    coding = (content_encoding or "").strip().lower()
    note = ""
    if coding in ("gzip", "x-gzip", "deflate"):
        inflated = _inflate(raw, coding, limit)
        if inflated is None:
            note = f"[{coding} body that does not decompress, shown as received] "
        else:
            raw, note = inflated, f"[{coding} body, shown decompressed] "
    elif coding not in ("", "identity"):
        note = f"[{coding[:40]} body, shown as received] "
    text = note + raw[:limit].decode("utf-8", errors="backslashreplace")
    return storable_text(text)[:limit]


def _inflate(raw: bytes, coding: str, limit: int) -> bytes | None:
    # 47: zlib or gzip header, detected; -15: raw deflate (some servers send it as "deflate").
    for wbits in (47, -15) if coding == "deflate" else (47,):
        try:
            return zlib.decompressobj(wbits=wbits).decompress(raw, limit)
        except zlib.error:
            continue
    return None


def answered(
    status: int,
    headers: Mapping[str, str],
    raw: bytes,
    *,
    started_at: datetime,
    duration_ms: int,
    body_limit: int,
    policy: AddressPolicy,
    body_error: str | None = None,
) -> AttemptResult:
    """The result of an answer whose status line and headers arrived.

    `body_error` says why the body did not arrive whole (a reset, the deadline): the exchange
    did not complete, so the attempt is a network error that keeps the status it saw.
    """
    outcome = classify(status)
    error: str | None = None
    if 300 <= status < 400:
        error = redirect_error(headers.get("Location"), policy)
    elif outcome is not Outcome.SUCCESS:
        error = describe_status(status)
    if body_error is not None:
        outcome = Outcome.NETWORK_ERROR
        error = f"{describe_status(status)} answered, then {body_error}"
    return AttemptResult(
        outcome,
        started_at,
        duration_ms,
        status_code=status,
        error=storable_text(error)[:ERROR_MAX_CHARS] if error is not None else None,
        response_body=decode_body(
            raw, content_encoding=headers.get("Content-Encoding"), limit=body_limit
        ),
        retry_after_s=parse_retry_after(
            headers.get("Retry-After"), status_code=status, now=started_at
        ),
    )


def failed(outcome: Outcome, reason: str, *, started_at: datetime, duration_ms: int):
    """The result of an attempt that got no answer (refused, reset, timed out, not HTTP)."""
    return AttemptResult(
        outcome, started_at, duration_ms, error=storable_text(reason)[:ERROR_MAX_CHARS]
    )
