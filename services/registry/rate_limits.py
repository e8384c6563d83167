"""Token buckets for the API, held in this process's memory (so per replica).

The bucket arithmetic is pyrate-limiter's `TokenBucket` (GCRA: one number of state per
bucket, the wait computed in closed form); this module only keeps one state per name, at
most `max_names` of them, and says what the `RateLimit-*` headers should read. Time is an
argument, so the decisions are pure and testable without waiting.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from pyrate_limiter import Rate, TokenBucket

# 100,000 names of ~200 bytes each: ~20 MB at most, whatever a flood of addresses does.
MAX_NAMES = 100_000
# Rates are given per second as floats (0.5/s is allowed): counted per 1,000 s so pyrate's
# integer `limit` keeps three decimals.
_INTERVAL_MS = 1_000_000


@dataclass(frozen=True)
class Verdict:
    """One request's fate under a bucket, and what the answer's headers say about it."""

    allowed: bool
    limit: int  # the bucket's size: what a client may spend at once when it is full
    remaining: int  # whole requests that would pass right now
    reset_s: int  # seconds until the bucket is full again
    retry_after_s: int  # refused: seconds until one request passes (0 when allowed)

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


class Buckets:
    """One token bucket of `burst` requests refilling at `rate_per_s` per name (an API key's
    digest, a client address, a webhook id); the least recently used names are forgotten
    beyond `max_names` (a forgotten name starts again with a full bucket)."""

    def __init__(self, *, rate_per_s: float, burst: int, max_names: int = MAX_NAMES) -> None:
        self._rates = [Rate(max(1, round(rate_per_s * 1000)), _INTERVAL_MS, burst=burst)]
        self._algorithm = TokenBucket()
        self._burst = burst
        self._max_names = max_names
        self._states: OrderedDict[str, tuple[float, ...]] = OrderedDict()

    def take(self, name: str, *, now_ms: int) -> Verdict:
        """Spend one request from `name`'s bucket if it has one (nothing when refused)."""
        state, verdict = self._step(name, now_ms)
        if verdict.allowed:
            self._states[name] = state
            self._states.move_to_end(name)
            while len(self._states) > self._max_names:
                self._states.popitem(last=False)
        return verdict

    def peek(self, name: str, *, now_ms: int) -> Verdict:
        """Whether one request would pass now; spends nothing."""
        return self._step(name, now_ms)[1]

    def _step(self, name: str, now_ms: int) -> tuple[tuple[float, ...], Verdict]:
        state = self._states.get(name) or self._algorithm.initial(self._rates)
        after, decision = self._algorithm.step(self._rates, state, now_ms, 1)
        owed = self._algorithm.consumed(self._rates, after, now_ms)
        verdict = Verdict(
            allowed=decision.allowed,
            limit=self._burst,
            remaining=max(0, self._burst - owed),
            reset_s=math.ceil(max(0.0, after[0] / 1000 - now_ms) / 1000),
            retry_after_s=(
                0 if decision.allowed else max(1, math.ceil((decision.retry_after_ms or 0) / 1000))
            ),
        )
        return after, verdict
