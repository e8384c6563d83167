"""When each API key was last used, to the minute, kept off the request's path.

A request only notes its key in memory (`KeyUsage.saw`); a loop beside the API writes what was
noted once a minute, in one UPDATE (`usage_recorded`). So each replica writes a key at most
once a minute, and not at all while the stored minute is already current.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from uuid import UUID

import structlog

from services.registry.accounts.models import ApiKey
from services.registry.background import running

log = structlog.get_logger(__name__)

FLUSH_EVERY_S = 60.0
# Keys noted between two flushes; past it, more are not noted until the next flush (their
# next request notes them again), so a flood of keys costs bounded memory and one bounded write.
MAX_NOTED_KEYS = 10_000


def to_the_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


class KeyUsage:
    """The keys used since the last `take`, each with the latest minute it was used in."""

    def __init__(self, *, max_keys: int = MAX_NOTED_KEYS) -> None:
        self._max_keys = max_keys
        self._noted: dict[UUID, datetime] = {}

    def saw(self, key: ApiKey, now: datetime) -> None:
        minute = to_the_minute(now)
        if key.last_used_at is not None and key.last_used_at >= minute:
            return  # already stored for this minute
        if key.id in self._noted or len(self._noted) < self._max_keys:
            self._noted[key.id] = max(minute, self._noted.get(key.id, minute))

    def take(self) -> dict[UUID, datetime]:
        """What was noted, forgotten here: the caller writes it."""
        noted, self._noted = self._noted, {}
        return noted


async def _flush_every(flush: Callable[[], Awaitable[int]], every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            await flush()
        except Exception as exc:  # noqa: BLE001 - this loop's top-level catch: next minute
            log.warning("api_key.usage_write_failed", error=repr(exc))


@contextlib.asynccontextmanager
async def usage_recorded(
    flush: Callable[[], Awaitable[int]], *, every_s: float = FLUSH_EVERY_S
) -> AsyncIterator[None]:
    """`flush` every `every_s` while the block runs, and once more when it ends."""
    try:
        async with running(_flush_every(flush, every_s), name="api-key-usage"):
            yield
    finally:
        try:
            await flush()
        except Exception as exc:  # noqa: BLE001 - stopping: what is lost is a minute of use
            log.warning("api_key.usage_write_failed", error=repr(exc))
