"""Pure watches that turn a stuck loop into a red `/readyz` with its reason.

Each takes the time as an argument (`now`, monotonic seconds) and answers "ok" or why not, so
a service's readiness lists them beside its broker and Postgres checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RetryWatch:
    """Counts consecutive failed tries of one input; red past `limit` until one succeeds."""

    what: str
    limit: int
    failures: int = 0
    last_error: str = ""

    def failed(self, error: str) -> None:
        self.failures += 1
        self.last_error = error[:200]

    def succeeded(self) -> None:
        self.failures = 0
        self.last_error = ""

    def check(self) -> str:
        if self.failures <= self.limit:
            return "ok"
        return f"{self.what} failed {self.failures} times in a row: {self.last_error}"


@dataclass
class BacklogWatch:
    """Red when a backlog has been non-empty and has not shrunk for `stall_s` seconds."""

    what: str
    stall_s: float
    _low: int = 0
    _since: float | None = field(default=None)

    def observe(self, size: int, *, now: float) -> None:
        if size == 0:
            self._since = None
        elif self._since is None or size < self._low:
            self._low, self._since = size, now

    def check(self, *, now: float) -> str:
        if self._since is None or now - self._since < self.stall_s:
            return "ok"
        return f"{self.what} has held {self._low}+ items for {now - self._since:.0f} s"


@dataclass
class FetchWatch:
    """Red when a consumer that has work (assigned partitions) has not fetched for `stall_s`."""

    what: str
    stall_s: float
    _last: float | None = None

    def fetched(self, *, now: float) -> None:
        self._last = now

    def check(self, *, now: float, has_work: bool) -> str:
        if not has_work or self._last is None or now - self._last < self.stall_s:
            return "ok"
        return f"{self.what} has not fetched for {now - self._last:.0f} s"
