"""Stats summed from stored buckets: percentiles from the histogram, empty buckets filled."""

from __future__ import annotations

from datetime import UTC, datetime

from services.registry.deliveries.stats import (
    LATENCY_BOUNDS_MS,
    StatsRow,
    percentile,
    summarise,
    window_start,
)

NOW = datetime(2026, 12, 1, 12, 30, 15, tzinfo=UTC)
EMPTY = [0] * (len(LATENCY_BOUNDS_MS) + 1)


def histogram(**counts: int) -> list[int]:
    h = list(EMPTY)
    for bound, count in counts.items():
        h[LATENCY_BOUNDS_MS.index(int(bound[1:]))] = count
    return h


def test_a_percentile_is_the_bound_of_the_bucket_its_rank_falls_in():
    h = histogram(b10=90, b500=9, b5000=1)
    assert [percentile(h, q) for q in (0.5, 0.9, 0.95, 0.99, 1.0)] == [10, 10, 500, 500, 5000]


def test_no_attempts_have_no_percentile():
    assert percentile(EMPTY, 0.5) is None


def test_attempts_slower_than_the_last_bound_report_the_last_bound():
    h = list(EMPTY)
    h[-1] = 3
    assert percentile(h, 0.5) == LATENCY_BOUNDS_MS[-1]


def test_windows_end_with_the_current_minute_or_hour():
    assert window_start("1h", NOW) == (60, datetime(2026, 12, 1, 11, 31, tzinfo=UTC))
    assert window_start("24h", NOW) == (3600, datetime(2026, 11, 30, 13, 0, tzinfo=UTC))


def test_missing_buckets_are_zeros_and_stored_ones_sum():
    start = datetime(2026, 12, 1, 12, 30, tzinfo=UTC)
    stats = summarise("w-1", "1h", [StatsRow(start, 4, 3, 1, histogram(b20=4))], None, now=NOW)
    assert (stats.attempts, stats.success_rate, stats.failure_streak) == (4, 0.75, 0)
    assert stats.deliveries.model_dump() == {"success": 3, "failed": 1, "pending": 0}
    assert len(stats.buckets) == 60 and stats.buckets[-1].attempts == 4
    assert stats.buckets[0].latency_p95_ms is None
