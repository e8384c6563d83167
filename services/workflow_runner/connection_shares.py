"""The runner's database connections shared out between accounts (a bulkhead).

Every run of an account, and every binding call its code makes, takes a connection through
its account's share: at most `per_organization` at once, however many runs it has in flight.
One account's flood (thousands of binding calls, a wave of runs all projecting the same room
and queueing on its row locks) can then fill its share of the pool but never all of it, and
another account's runs always find a connection. Measured in `make chaos`'s sandbox scenario:
without shares, a benign run of another account waited up to 26 ms for a connection during the
attack.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg


class _Share:
    __slots__ = ("slots", "users")

    def __init__(self, size: int) -> None:
        self.slots = asyncio.Semaphore(size)
        self.users = 0  # holding or waiting: the share is forgotten when none is left


class ConnectionShares:
    def __init__(self, pool: asyncpg.Pool, *, per_organization: int) -> None:
        if per_organization < 1:
            raise ValueError("per_organization must be at least 1")
        self._pool = pool
        self._size = per_organization
        self._shares: dict[str, _Share] = {}  # only accounts with a connection held or awaited

    @asynccontextmanager
    async def acquire(self, organization_id: str) -> AsyncIterator[asyncpg.Connection]:
        share = self._shares.get(organization_id)
        if share is None:
            share = self._shares[organization_id] = _Share(self._size)
        share.users += 1
        try:
            async with share.slots, self._pool.acquire() as conn:
                yield conn
        finally:
            share.users -= 1
            if share.users == 0:
                del self._shares[organization_id]


def share_of(pool_max_size: int) -> int:
    """Half the pool per account: at least one connection, and half left for the others."""
    return max(1, pool_max_size // 2)
