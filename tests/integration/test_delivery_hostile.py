"""Endpoints that answer in hostile ways, on a real local server: every answer ends in a
recorded attempt with its reason, and none of them holds back a healthy webhook."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from services.delivery.app import Delivery
from tests.support.deliveries import create_webhook, request_deliveries, running_delivery
from tests.support.hostile_endpoints import KINDS, SUCCEEDING, HostileEndpoints
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

BODY_MAX = 4096


@dataclass(frozen=True)
class Expect:
    """The attempt row a hostile answer must leave: its status code, and what its error and
    response body say (`None`: empty)."""

    status_code: int | None
    error: str | None
    body: str | None = None
    body_length: int | None = None


EXPECTED: dict[str, Expect] = {
    "nul-body": Expect(500, "HTTP 500 Internal Server Error", "boom\\u0000after the nul\\u0000"),
    "invalid-utf8": Expect(500, "HTTP 500 Internal Server Error", "bad \\xff\\xfe \\xc3( bytes"),
    "gzip-body": Expect(200, None, "[gzip body, shown decompressed] accepted, compressed"),
    "huge-body": Expect(200, None, body_length=BODY_MAX),
    "endless-body": Expect(200, None, body_length=BODY_MAX),
    "trickle-body": Expect(200, "HTTP 200 OK answered, then its body did not end within 2"),
    "long-header": Expect(None, "the answer is not valid HTTP: Got more than 8190 bytes"),
    "long-status-line": Expect(None, "the answer is not valid HTTP: Got more than 8190 bytes"),
    "bad-retry-after": Expect(429, "HTTP 429 Too Many Requests", "slow down"),
    "bad-location": Expect(
        302, "redirect to http://[::1 not followed; the Location is not a valid URL", ""
    ),
    "reset-mid-answer": Expect(200, "HTTP 200 OK answered, then its body broke off"),
    "not-http": Expect(None, "the answer is not valid HTTP: Bad status line"),
    "tls-error": Expect(None, "ClientConnectorSSLError"),
}

BEHAVIOUR = {
    "nul-body": "a_nul_in_the_body_is_stored_escaped",
    "invalid-utf8": "invalid_utf8_is_stored_as_hex_escapes",
    "gzip-body": "a_gzip_body_sent_anyway_is_stored_decompressed",
    "huge-body": "a_huge_body_is_read_no_further_than_the_cap",
    "endless-body": "an_endless_body_is_read_no_further_than_the_cap",
    "trickle-body": "a_trickling_body_ends_at_the_attempt_deadline",
    "long-header": "an_overlong_header_is_a_recorded_protocol_error",
    "long-status-line": "an_overlong_status_line_is_a_recorded_protocol_error",
    "bad-retry-after": "a_malformed_retry_after_is_ignored_and_the_schedule_applies",
    "bad-location": "a_malformed_location_is_recorded_as_such",
    "reset-mid-answer": "a_reset_mid_answer_is_a_recorded_network_error",
    "not-http": "bytes_that_are_not_http_are_a_recorded_protocol_error",
    "tls-error": "a_tls_error_is_a_recorded_network_error",
}


def test_the_table_covers_every_hostile_kind():
    assert set(EXPECTED) == set(KINDS) == set(BEHAVIOUR)


@pytest.fixture
async def hostile() -> AsyncIterator[HostileEndpoints]:
    async with HostileEndpoints() as endpoints:
        yield endpoints


@pytest.fixture
async def delivery(postgres_settings, kafka_settings) -> AsyncIterator[Delivery]:
    async with running_delivery(
        postgres_settings, kafka_settings, response_body_max_bytes=BODY_MAX
    ) as service:
        yield service


async def final_attempts(pool, delivery_id: str, timeout_s: float = 30):
    """The delivery once it is final, and its attempt rows in order."""

    async def done():
        return await pool.fetchrow(
            "SELECT * FROM delivery.deliveries WHERE id = $1 AND status <> 'pending'",
            uuid.UUID(delivery_id),
        )

    row = await eventually(done, timeout_s=timeout_s, interval_s=0.1)
    attempts = await pool.fetch(
        "SELECT * FROM delivery.delivery_attempts WHERE delivery_id = $1 ORDER BY attempt",
        uuid.UUID(delivery_id),
    )
    return row, attempts


def assert_recorded(kind: str, row, attempts) -> None:
    expect = EXPECTED[kind]
    succeeds = kind in SUCCEEDING
    assert row["status"] == ("success" if succeeds else "failed"), (kind, row)
    # One retry scheduled: a failure is attempted twice, then failed; never again.
    assert row["attempts"] == len(attempts) == (1 if succeeds else 2), (kind, attempts)
    assert row["next_attempt_at"] is None and row["lease_until"] is None
    for attempt in attempts:
        assert attempt["status_code"] == expect.status_code, (kind, attempt)
        if expect.error is None:
            assert attempt["error"] is None, (kind, attempt)
        else:
            assert (attempt["error"] or "").startswith(expect.error), (kind, attempt["error"])
        if expect.body is not None:
            assert attempt["response_body"] == expect.body, (kind, attempt)
        if expect.body_length is not None:
            assert len(attempt["response_body"]) == expect.body_length, kind
    assert row["last_error"] == attempts[-1]["error"]


@pytest.mark.parametrize("kind", KINDS, ids=[BEHAVIOUR[k] for k in KINDS])
async def test_a_hostile_answer_ends_in_a_recorded_attempt(
    kind, hostile, delivery, registry, producer, topics, pool
):
    webhook = await create_webhook(registry, hostile.url(kind), retrySchedule=[1])
    [delivery_id] = await request_deliveries(producer, topics.deliveries, webhook, ["e1"])
    row, attempts = await final_attempts(pool, delivery_id)
    assert_recorded(kind, row, attempts)
    if kind != "tls-error":  # a TLS hello is counted per connection attempt, not per request
        assert hostile.hits[kind] == len(attempts)


async def test_hostile_endpoints_all_at_once_hold_back_neither_each_other_nor_a_healthy_one(
    hostile, delivery, registry, producer, topics, pool, receiver
):
    healthy = await create_webhook(registry, receiver.url("/healthy"), retrySchedule=[1])
    hostiles = {
        kind: await create_webhook(registry, hostile.url(kind), retrySchedule=[1]) for kind in KINDS
    }
    events = [f"e{n}" for n in range(5)]
    wanted = {}
    for kind, webhook in hostiles.items():
        ids = await request_deliveries(producer, topics.deliveries, webhook, events)
        wanted.update({delivery_id: kind for delivery_id in ids})
    healthy_ids = await request_deliveries(producer, topics.deliveries, healthy, events)

    for delivery_id in healthy_ids:
        row, _ = await final_attempts(pool, delivery_id)
        assert row["status"] == "success"
    results = await asyncio.gather(*(final_attempts(pool, d, timeout_s=60) for d in wanted))
    for (row, attempts), kind in zip(results, wanted.values(), strict=True):
        assert_recorded(kind, row, attempts)
    assert len(receiver.received["/healthy"]) == len(events)
