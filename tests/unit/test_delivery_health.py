"""Endpoint health aggregated from one batch of attempts: buckets, histogram, streaks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.delivery.attempt_stats import (
    LATENCY_BOUNDS_MS,
    RecordedAttempt,
    aggregate,
    bucket_start,
    latency_bucket,
)

T0 = datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC)
HOOK = uuid.uuid4()


def attempt(seconds: float, status: str, *, ms: int = 10, error: str | None = None):
    return RecordedAttempt(HOOK, T0 + timedelta(seconds=seconds), ms, status, error)


@pytest.mark.parametrize(
    ("ms", "bucket"),
    [(0, 0), (1, 0), (2, 1), (10, 5), (11, 6), (120_000, len(LATENCY_BOUNDS_MS) - 1)],
)
def test_a_duration_falls_in_the_first_bucket_whose_bound_holds_it(ms, bucket):
    assert latency_bucket(ms) == bucket


def test_a_duration_past_the_last_bound_counts_as_slower():
    assert latency_bucket(10**7) == len(LATENCY_BOUNDS_MS)


def test_buckets_start_on_the_minute_and_the_hour():
    assert bucket_start(T0, 60) == T0.replace(second=0)
    assert bucket_start(T0, 3600) == T0.replace(minute=0, second=0)


def test_a_batch_sums_per_webhook_and_minute_and_hour():
    buckets, _ = aggregate(
        [
            attempt(0, "success", ms=3),
            attempt(5, "pending", ms=3000, error="HTTP 503"),
            attempt(40, "failed", ms=3000, error="HTTP 503"),
        ]
    )
    by_period = {(b.period_s, b.bucket_start): b for b in buckets}
    assert len(by_period) == 3  # two minutes, one hour
    hour = by_period[(3600, T0.replace(minute=0, second=0))]
    assert (hour.attempts, hour.successes, hour.gave_up) == (3, 1, 1)
    assert hour.latency_ms[latency_bucket(3)] == 1
    assert hour.latency_ms[latency_bucket(3000)] == 2
    assert sum(by_period[(60, T0.replace(second=0))].latency_ms) == 2


def test_failures_after_the_batchs_last_success_make_the_streak():
    _, [change] = aggregate(
        [
            attempt(0, "pending", error="HTTP 500"),
            attempt(1, "success"),
            attempt(2, "pending", error="timed out"),
            attempt(3, "failed", error="HTTP 502"),
        ]
    )
    assert change.last_success_at == T0 + timedelta(seconds=1)
    assert change.failure_streak == 2
    assert (change.last_failure_at, change.last_error) == (T0 + timedelta(seconds=3), "HTTP 502")
    assert change.last_gave_up_at == T0 + timedelta(seconds=3)


def test_a_batch_without_success_leaves_the_last_success_unknown():
    _, [change] = aggregate([attempt(1, "pending"), attempt(0, "pending")])
    assert change.last_success_at is None
    assert change.failure_streak == 2
    assert change.last_gave_up_at is None
