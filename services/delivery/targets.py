"""The webhook targets cache: url, secret, enabled and schedule, loaded from Postgres.

Entries are dropped when `roomhooks.registry` announces a change of their webhook (and after
a TTL as a safety net), so an attempt always uses the registry's current settings.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from uuid import UUID

import asyncpg

from services.delivery import repository
from services.delivery.repository import Target


class Targets:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        ttl_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._ttl_s = ttl_s
        self._monotonic = monotonic
        self._entries: dict[UUID, tuple[float, Target | None]] = {}
        self._loading: dict[UUID, asyncio.Future[Target | None]] = {}

    async def get(self, webhook_id: UUID) -> Target | None:
        """The current target, or None when the webhook no longer exists."""
        entry = self._entries.get(webhook_id)
        if entry is not None and self._monotonic() - entry[0] < self._ttl_s:
            return entry[1]
        pending = self._loading.get(webhook_id)
        if pending is not None:  # one load per webhook, however many deliveries wait on it
            return await asyncio.shield(pending)
        future: asyncio.Future[Target | None] = asyncio.get_running_loop().create_future()
        self._loading[webhook_id] = future
        try:
            async with self._pool.acquire() as conn:
                target = await repository.load_target(conn, webhook_id)
            self._entries[webhook_id] = (self._monotonic(), target)
            future.set_result(target)
            return target
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs it twice
            raise
        finally:
            del self._loading[webhook_id]

    def invalidate(self, webhook_id: UUID) -> None:
        self._entries.pop(webhook_id, None)

    def mark_disabled(self, webhook_id: UUID) -> None:
        """Stop sending at once, before the registry's change comes back round."""
        entry = self._entries.get(webhook_id)
        if entry is not None and entry[1] is not None:
            self._entries[webhook_id] = (entry[0], replace(entry[1], enabled=False))

    def __len__(self) -> int:
        return len(self._entries)
