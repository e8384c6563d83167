"""Pure: how long to wait before trying an input again, and which inputs have been tried too
often (for /readyz). A retried input is one that failed for the world's sake (Postgres or the
sandbox away), never for its content: that is recorded once and not tried again."""

from __future__ import annotations

from shared.readiness import RetryWatch

FIRST_BACKOFF_S = 0.5


def backoff_s(failures: int, *, max_s: float) -> float:
    """Seconds before try `failures + 1`: 0.5 s after the first failure, doubling to `max_s`."""
    if failures <= 0:
        return 0.0
    return min(max_s, FIRST_BACKOFF_S * 2 ** min(failures - 1, 30))


class RetryWatches:
    """One RetryWatch per input under retry (a run id); bounded by the inputs under way, as
    each is forgotten once it succeeds or is given up."""

    def __init__(self, *, what: str, limit: int) -> None:
        self._what, self._limit = what, limit
        self._watches: dict[str, RetryWatch] = {}

    def failed(self, key: str, error: str) -> int:
        """Count one more failure of `key`; returns how many in a row."""
        watch = self._watches.get(key)
        if watch is None:
            watch = self._watches[key] = RetryWatch(f"{self._what} {key}", self._limit)
        watch.failed(error)
        return watch.failures

    def forget(self, key: str) -> None:
        self._watches.pop(key, None)

    def check(self) -> str:
        """ "ok", or the reason of the input tried most often past the limit."""
        worst = max(self._watches.values(), key=lambda w: w.failures, default=None)
        return "ok" if worst is None else worst.check()
