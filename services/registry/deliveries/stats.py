"""A webhook's endpoint health as the API answers it, summed from the aggregates delivery keeps
(`delivery.attempt_stats`, per minute and hour, and `delivery.webhook_health`): never a scan
of attempts. Pure: rows in, answer out.

Latency percentiles come from a fixed-bucket histogram: each is the upper bound of the bucket
its rank falls in (exact to 1 ms up to 10 ms, within 1.5x above).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field, field_serializer

from shared.events import format_timestamp
from shared.latency_buckets import LATENCY_BOUNDS_MS

Window = Literal["1h", "24h", "7d"]
# Each window: its series' bucket (seconds) and how many buckets, the current one last.
WINDOWS: dict[str, tuple[int, int]] = {"1h": (60, 60), "24h": (3600, 24), "7d": (3600, 168)}
DEFAULT_WINDOW = "24h"


@dataclass(frozen=True)
class StatsRow:
    """One stored minute or hour of one webhook's attempts."""

    bucket_start: datetime
    attempts: int
    successes: int
    gave_up: int
    latency_ms: list[int]


@dataclass(frozen=True)
class HealthRow:
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_error: str | None
    failure_streak: int


def _instant(value: datetime | None) -> str | None:
    return format_timestamp(value) if value is not None else None


class Latency(BaseModel):
    """Milliseconds, each the upper bound of its histogram bucket; null without attempts."""

    p50: int | None
    p95: int | None
    p99: int | None


class DeliveryOutcomes(BaseModel):
    """What the window's attempts left their deliveries as."""

    success: int = Field(description="Delivered.")
    failed: int = Field(description="Failed for good (the retry schedule spent, or refused).")
    pending: int = Field(description="Not yet: a retry is due.")


class StatsBucket(BaseModel):
    start: datetime
    attempts: int
    successes: int
    failures: int
    latency_p95_ms: int | None

    @field_serializer("start", when_used="json")
    def _start(self, value: datetime) -> str:
        return format_timestamp(value)


class WebhookStats(BaseModel):
    """A webhook's endpoint health over a window (the current minute or hour included)."""

    webhook_id: str
    window: Window
    since: datetime = Field(description="The start of the window's first bucket.")
    attempts: int
    successes: int
    failures: int
    success_rate: float | None = Field(description="successes / attempts; null without any.")
    deliveries: DeliveryOutcomes
    latency_ms: Latency
    last_success_at: datetime | None = Field(description="Ever, not only in the window.")
    last_failure_at: datetime | None
    last_error: str | None = Field(description="The last failed attempt's error.")
    failure_streak: int = Field(description="Failed attempts since the last success.")
    buckets: list[StatsBucket] = Field(description="Oldest first, one per minute (1h) or hour.")

    @field_serializer("since", "last_success_at", "last_failure_at", when_used="json")
    def _timestamps(self, value: datetime | None) -> str | None:
        return _instant(value)


class WebhookStatsData(BaseModel):
    stats: WebhookStats


def window_start(window: str, now: datetime) -> tuple[int, datetime]:
    """The window's bucket (seconds) and the start of its first bucket."""
    period_s, count = WINDOWS[window]
    seconds = now.timestamp()
    current = datetime.fromtimestamp(seconds - seconds % period_s, tz=UTC)
    return period_s, current - timedelta(seconds=period_s * (count - 1))


def percentile(histogram: Sequence[int], q: float) -> int | None:
    """The upper bound of the bucket holding the `q` quantile (the last bound for the slower
    ones); None for an empty histogram."""
    total = sum(histogram)
    if total == 0:
        return None
    rank, seen = q * total, 0
    for index, count in enumerate(histogram):
        seen += count
        if seen >= rank and count:
            return LATENCY_BOUNDS_MS[min(index, len(LATENCY_BOUNDS_MS) - 1)]
    return LATENCY_BOUNDS_MS[-1]


def summarise(
    webhook_id: str,
    window: str,
    rows: Sequence[StatsRow],
    health: HealthRow | None,
    *,
    now: datetime,
) -> WebhookStats:
    """The answer for `window` from its stored buckets (oldest first, any missing) and the
    webhook's health row (None: no attempt yet)."""
    period_s, since = window_start(window, now)
    stored = {r.bucket_start: r for r in rows}
    histogram = [0] * (len(LATENCY_BOUNDS_MS) + 1)
    for row in rows:
        histogram = [a + b for a, b in zip(histogram, row.latency_ms, strict=False)]
    attempts = sum(r.attempts for r in rows)
    successes = sum(r.successes for r in rows)
    gave_up = sum(r.gave_up for r in rows)
    health = health or HealthRow(None, None, None, 0)
    return WebhookStats(
        webhook_id=webhook_id,
        window=window,  # type: ignore[arg-type]
        since=since,
        attempts=attempts,
        successes=successes,
        failures=attempts - successes,
        success_rate=round(successes / attempts, 4) if attempts else None,
        deliveries=DeliveryOutcomes(
            success=successes, failed=gave_up, pending=attempts - successes - gave_up
        ),
        latency_ms=Latency(
            p50=percentile(histogram, 0.5),
            p95=percentile(histogram, 0.95),
            p99=percentile(histogram, 0.99),
        ),
        last_success_at=health.last_success_at,
        last_failure_at=health.last_failure_at,
        last_error=health.last_error,
        failure_streak=health.failure_streak,
        buckets=[
            _bucket(start, stored.get(start))
            for start in (
                since + timedelta(seconds=period_s * i) for i in range(WINDOWS[window][1])
            )
        ],
    )


def _bucket(start: datetime, row: StatsRow | None) -> StatsBucket:
    if row is None:
        return StatsBucket(start=start, attempts=0, successes=0, failures=0, latency_p95_ms=None)
    return StatsBucket(
        start=start,
        attempts=row.attempts,
        successes=row.successes,
        failures=row.attempts - row.successes,
        latency_p95_ms=percentile(row.latency_ms, 0.95),
    )
