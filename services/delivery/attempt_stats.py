"""Endpoint health from one recorded batch of attempts, aggregated in memory: per webhook and
minute/hour the counts and a latency histogram, and per webhook its last success, last
failure and failure streak. Pure; the recorder writes both in one upsert per batch.

The histogram has fixed bounds (below), so percentiles read from it are the upper bound of
the bucket the rank falls in: at most 1 ms off up to 10 ms, and within 1.5x above 10 ms.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from uuid import UUID

from shared.latency_buckets import LATENCY_BOUNDS_MS

PERIODS_S = (60, 3600)  # minute rows serve the 1h window, hour rows 24h and 7d


@dataclass(frozen=True)
class RecordedAttempt:
    """What health needs of one attempt that was recorded."""

    webhook_id: UUID
    started_at: datetime
    duration_ms: int
    status: str  # what it left its delivery as: success, pending (retry due) or failed
    error: str | None


@dataclass
class StatsBucket:
    """One webhook's attempts in one minute or hour."""

    webhook_id: UUID
    period_s: int
    bucket_start: datetime
    attempts: int = 0
    successes: int = 0
    gave_up: int = 0
    latency_ms: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS_MS) + 1))


@dataclass
class HealthChange:
    """One webhook's health after a batch: merged into its row (`failure_streak` adds to the
    stored one unless the batch held a success)."""

    webhook_id: UUID
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_error: str | None = None
    failure_streak: int = 0
    last_gave_up_at: datetime | None = None


def latency_bucket(duration_ms: int) -> int:
    """Index of the first bound at or above `duration_ms` (the last index: slower)."""
    return bisect.bisect_left(LATENCY_BOUNDS_MS, duration_ms)


def bucket_start(at: datetime, period_s: int) -> datetime:
    seconds = at.timestamp()
    return datetime.fromtimestamp(seconds - seconds % period_s, tz=at.tzinfo)


class _BucketStarts:
    """`bucket_start` for one batch, each start made once: a batch's attempts share a few
    minutes and one or two hours (a datetime per attempt and period was 1.6 us a row)."""

    def __init__(self) -> None:
        self._made: dict[tuple[float, tzinfo | None], datetime] = {}

    def of(self, seconds: float, period_s: int, tz: tzinfo | None) -> datetime:
        key = (seconds - seconds % period_s, tz)
        start = self._made.get(key)
        if start is None:
            start = self._made[key] = datetime.fromtimestamp(key[0], tz=tz)
        return start


def aggregate(
    attempts: Iterable[RecordedAttempt],
) -> tuple[list[StatsBucket], list[HealthChange]]:
    """The batch's stats rows and health changes, one per (webhook, period, bucket) and per
    webhook."""
    buckets: dict[tuple[UUID, int, datetime], StatsBucket] = {}
    health: dict[UUID, HealthChange] = {}
    starts = _BucketStarts()
    for a in sorted(attempts, key=lambda a: a.started_at):
        ok = a.status == "success"
        seconds = a.started_at.timestamp()
        for period_s in PERIODS_S:
            start = starts.of(seconds, period_s, a.started_at.tzinfo)
            key = (a.webhook_id, period_s, start)
            row = buckets.get(key) or buckets.setdefault(
                key, StatsBucket(a.webhook_id, period_s, start)
            )
            row.attempts += 1
            row.successes += ok
            row.gave_up += a.status == "failed"
            row.latency_ms[latency_bucket(a.duration_ms)] += 1
        change = health.get(a.webhook_id) or health.setdefault(
            a.webhook_id, HealthChange(a.webhook_id)
        )
        if ok:
            change.last_success_at, change.failure_streak = a.started_at, 0
            continue
        change.last_failure_at, change.last_error = a.started_at, a.error
        change.failure_streak += 1
        if a.status == "failed":
            change.last_gave_up_at = a.started_at
    # Sorted: concurrent batches (N replicas) lock shared rows in one order, so never deadlock.
    return [buckets[k] for k in sorted(buckets)], [health[k] for k in sorted(health)]
