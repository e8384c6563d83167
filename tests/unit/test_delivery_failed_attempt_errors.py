"""Every failed attempt with an answer records its reason as `error` in one format, `HTTP <status>
<phrase>`, a 410 included (which adds what it did); a success records none."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.delivery.answers import answered
from services.delivery.policy import Outcome
from shared.ssrf import AddressPolicy

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
POLICY = AddressPolicy.build(allow_loopback=False, allowed_networks=[])


def error_of(status: int, body: bytes = b"", body_error: str | None = None) -> str | None:
    return answered(
        status,
        {},
        body,
        started_at=NOW,
        duration_ms=3,
        body_limit=4096,
        policy=POLICY,
        body_error=body_error,
    ).error


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, "HTTP 400 Bad Request"),
        (404, "HTTP 404 Not Found"),
        (429, "HTTP 429 Too Many Requests"),
        (500, "HTTP 500 Internal Server Error"),
        (503, "HTTP 503 Service Unavailable"),
        (410, "HTTP 410 Gone: the webhook is disabled"),
    ],
)
def test_each_failed_status_records_its_reason_in_the_same_format(status: int, error: str):
    assert error_of(status, body=b"whatever the endpoint says") == error


def test_a_410_is_a_gone_outcome_with_its_reason_whatever_its_body() -> None:
    result = answered(410, {}, b"", started_at=NOW, duration_ms=3, body_limit=4096, policy=POLICY)
    assert result.outcome is Outcome.GONE
    assert result.error == error_of(410, body=b'{"reason": "unsubscribed"}')


def test_a_410_whose_body_broke_off_keeps_its_reason_too() -> None:
    error = error_of(410, body=b"par", body_error="the connection was reset")
    assert error == "HTTP 410 Gone: the webhook is disabled answered, then the connection was reset"


def test_a_success_records_no_error() -> None:
    assert error_of(200) is None and error_of(204) is None
