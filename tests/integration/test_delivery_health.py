"""Endpoint health written with the attempts on real Postgres: the recorder's batch adds to
the minute and hour rows and merges the webhook's health row; a fenced attempt counts for
nothing; auto-disable's turn takes each stale webhook once, one replica at a time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.delivery import repository
from services.delivery.attempt_stats import latency_bucket
from services.delivery.health_store import PostgresStaleWebhooks
from services.delivery.rows import AttemptRow
from shared.messages import DeliveryRequested, delivery_id_for
from tests.support.deliveries import create_webhook

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


async def deliveries(pool: asyncpg.Pool, webhook: uuid.UUID, n: int) -> list[uuid.UUID]:
    requests = [
        DeliveryRequested(
            delivery_id=delivery_id_for(str(webhook), f"e{i}"),
            webhook_id=str(webhook),
            organization_id=str(uuid.uuid4()),
            event_id=f"e{i}",
            event="participant.joined",
            body="{}",
            created_at=NOW,
        )
        for i in range(n)
    ]
    async with pool.acquire() as conn:
        jobs = await repository.insert_requested(conn, requests, now=NOW, lease_until=NOW)
    return [job.id for job in jobs]


def row(delivery_id, *, attempt=1, seconds=0, status="success", ms=5, error=None):
    return AttemptRow(
        delivery_id=delivery_id,
        delivery_created_at=NOW,  # every delivery here is created at NOW
        attempt=attempt,
        started_at=NOW + timedelta(seconds=seconds),
        duration_ms=ms,
        status_code=200 if status == "success" else 500,
        error=error,
        response_body=None,
        status=status,
        next_attempt_at=None,
    )


async def record(pool: asyncpg.Pool, rows: list[AttemptRow]) -> int:
    async with pool.acquire() as conn:
        return await repository.record_attempts_with_health(conn, rows, now=NOW)


async def test_batches_add_to_the_minute_and_hour_rows_and_merge_health(pool):
    webhook = uuid.uuid4()
    a, b, c = await deliveries(pool, webhook, 3)
    assert await record(
        pool, [row(a, ms=4), row(b, seconds=10, status="pending", error="HTTP 500")]
    )
    assert await record(
        pool,
        [
            row(b, attempt=2, seconds=70, status="failed", ms=900, error="HTTP 502"),
            row(c, seconds=80, status="pending", error="timed out"),
        ],
    )

    stats = await pool.fetch(
        "SELECT * FROM delivery.attempt_stats WHERE webhook_id = $1"
        " ORDER BY period_s, bucket_start",
        webhook,
    )
    assert [(s["period_s"], s["attempts"], s["successes"], s["gave_up"]) for s in stats] == [
        (60, 2, 1, 0),
        (60, 2, 0, 1),
        (3600, 4, 1, 1),
    ]
    hour = stats[-1]["latency_ms"]
    assert hour[latency_bucket(900)] == 1 and hour[latency_bucket(5)] == 3
    health = await pool.fetchrow(
        "SELECT * FROM delivery.webhook_health WHERE webhook_id = $1", webhook
    )
    assert health["last_success_at"] == NOW
    assert health["failure_streak"] == 3
    assert (health["last_failure_at"], health["last_error"]) == (
        NOW + timedelta(seconds=80),
        "timed out",
    )
    assert health["last_gave_up_at"] == NOW + timedelta(seconds=70)


async def test_a_success_ends_the_streak_and_a_fenced_attempt_counts_for_nothing(pool):
    webhook = uuid.uuid4()
    [a] = await deliveries(pool, webhook, 1)
    await record(pool, [row(a, status="pending", error="HTTP 500")])
    # The same attempt again (a replica whose lease ran out): fenced, not counted.
    assert await record(pool, [row(a, status="pending", error="HTTP 500")]) == 0
    await record(pool, [row(a, attempt=2, seconds=5)])

    health = await pool.fetchrow(
        "SELECT * FROM delivery.webhook_health WHERE webhook_id = $1", webhook
    )
    assert (health["failure_streak"], health["last_success_at"]) == (0, NOW + timedelta(seconds=5))
    assert health["last_error"] == "HTTP 500"
    attempts = await pool.fetchval(
        "SELECT attempts FROM delivery.attempt_stats WHERE webhook_id = $1 AND period_s = 3600",
        webhook,
    )
    assert attempts == 2


async def test_the_stale_turn_takes_what_failed_for_good_since_its_last_success_once(
    registry, pool
):
    never = await create_webhook(registry, "http://127.0.0.1:9/never")
    recovered = await create_webhook(registry, "http://127.0.0.1:9/recovered")
    gone = uuid.uuid4()  # no registry row: deleted
    ids = {}
    for webhook in (uuid.UUID(never["id"]), uuid.UUID(recovered["id"]), gone):
        ids[webhook] = await deliveries(pool, webhook, 2)
    now = datetime.now(UTC)
    for webhook, (first, second) in ids.items():
        rows = [row(first, status="failed", error="HTTP 503")]
        if webhook == uuid.UUID(recovered["id"]):
            rows.append(row(second, seconds=10))  # a success after it gave up
        await record(pool, rows)
    store = PostgresStaleWebhooks(pool)
    later = now + timedelta(days=1)

    async with store.stale_turn(stale_before=later, limit=10, now=later) as stale:
        async with store.stale_turn(stale_before=later, limit=10, now=later) as meanwhile:
            assert meanwhile == []  # SKIP LOCKED: another replica's turn takes none of them
        by_id = {s.webhook_id: s for s in stale}
    assert set(by_id) == {uuid.UUID(never["id"]), gone}
    assert by_id[uuid.UUID(never["id"])].enabled and by_id[gone].organization_id is None
    assert by_id[uuid.UUID(never["id"])].last_error == "HTTP 503"
    async with store.stale_turn(stale_before=later, limit=10, now=later) as again:
        assert again == []  # ordered once per failure
