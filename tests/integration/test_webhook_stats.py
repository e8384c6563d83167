"""GET /webhooks/{id}/stats on real Postgres: figures from the aggregates delivery's recorder
writes with the attempts; any role reads them, another account gets 404, a bad window a 400
naming it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.delivery import repository
from services.delivery.rows import AttemptRow
from services.registry.policy import Role
from shared.messages import DeliveryRequested, delivery_id_for

pytestmark = pytest.mark.integration

BODY = {"url": "http://127.0.0.1:9999/hook", "events": ["participant.joined"]}


async def webhook_of(registry, account) -> str:
    resp = await registry.http.post(
        registry.webhooks_url(account), json=BODY, headers=account.auth(Role.OWNER)
    )
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"]["webhook"]["id"]


async def attempts_made(pool, webhook_id: str, organization_id: str, outcomes) -> None:
    """One delivery per (status, ms, error), attempted once, recorded as the recorder does."""
    now = datetime.now(UTC)
    requests = [
        DeliveryRequested(
            delivery_id=delivery_id_for(webhook_id, f"e{i}"),
            webhook_id=webhook_id,
            organization_id=organization_id,
            event_id=f"e{i}",
            event="participant.joined",
            body="{}",
            created_at=now,
        )
        for i in range(len(outcomes))
    ]
    async with pool.acquire() as conn:
        jobs = await repository.insert_requested(conn, requests, now=now, lease_until=now)
        rows = [
            AttemptRow(
                delivery_id=job.id,
                delivery_created_at=job.created_at,
                attempt=1,
                started_at=now - timedelta(seconds=len(outcomes) - i),
                duration_ms=ms,
                status_code=200 if status == "success" else 503,
                error=error,
                response_body=None,
                status=status,
                next_attempt_at=None,
            )
            for i, (job, (status, ms, error)) in enumerate(zip(jobs, outcomes, strict=True))
        ]
        assert await repository.record_attempts_with_health(conn, rows, now=now) == len(rows)


async def stats(registry, account, webhook_id: str, role=Role.MEMBER, query="?window=1h"):
    url = registry.webhooks_url(account, webhook_id) + "/stats" + query
    resp = await registry.http.get(url, headers=account.auth(role))
    return resp.status, await resp.json()


async def test_stats_sum_the_recorded_attempts_for_any_role(registry, pool):
    alice = registry.alice
    webhook_id = await webhook_of(registry, alice)
    outcomes = [("success", 12, None)] * 8 + [
        ("pending", 2500, "HTTP 503"),
        ("failed", 40, "connection refused"),
    ]
    await attempts_made(pool, webhook_id, alice.id, outcomes)

    status, body = await stats(registry, alice, webhook_id)
    assert status == 200, body
    s = body["data"]["stats"]
    assert (s["webhook_id"], s["window"]) == (webhook_id, "1h")
    assert (s["attempts"], s["successes"], s["failures"]) == (10, 8, 2)
    assert s["success_rate"] == 0.8
    assert s["deliveries"] == {"success": 8, "failed": 1, "pending": 1}
    assert s["latency_ms"] == {"p50": 15, "p95": 3000, "p99": 3000}
    assert s["failure_streak"] == 2
    assert s["last_error"] == "connection refused"
    assert s["last_success_at"] < s["last_failure_at"]
    assert len(s["buckets"]) == 60
    assert sum(b["attempts"] for b in s["buckets"]) == 10

    for window, count in (("24h", 24), ("7d", 168)):
        status, body = await stats(registry, alice, webhook_id, query=f"?window={window}")
        assert status == 200 and len(body["data"]["stats"]["buckets"]) == count
        assert body["data"]["stats"]["attempts"] == 10


async def test_a_webhook_without_attempts_answers_zeros_over_a_day_by_default(registry):
    webhook_id = await webhook_of(registry, registry.alice)
    status, body = await stats(registry, registry.alice, webhook_id, query="")
    assert status == 200
    s = body["data"]["stats"]
    assert (s["window"], s["attempts"], s["success_rate"], s["failure_streak"]) == (
        "24h",
        0,
        None,
        0,
    )
    assert s["latency_ms"] == {"p50": None, "p95": None, "p99": None}


async def test_another_accounts_webhook_is_a_404(registry):
    webhook_id = await webhook_of(registry, registry.alice)
    status, _ = await stats(registry, registry.bob, webhook_id, role=Role.OWNER)
    assert status == 404
    status, _ = await stats(registry, registry.alice, str(uuid.uuid4()))
    assert status == 404


@pytest.mark.parametrize("window", ["2h", "1H", "7d;", "x" * 300])
async def test_a_bad_window_is_a_400_naming_window(registry, window):
    webhook_id = await webhook_of(registry, registry.alice)
    status, body = await stats(registry, registry.alice, webhook_id, query=f"?window={window}")
    assert status == 400
    assert [d["field"] for d in body["error"]["details"]] == ["window"]
