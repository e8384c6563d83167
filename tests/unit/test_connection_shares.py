"""An account's runs hold at most their share of the runner's connections; another account's
runs still find one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from services.workflow_runner.connection_shares import ConnectionShares, share_of


class FakePool:
    """Hands out numbered connections, `size` at most at once, and counts them."""

    def __init__(self, size: int) -> None:
        self._free = asyncio.Semaphore(size)
        self.handed = 0
        self.out = 0

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[int]:
        async with self._free:
            self.handed += 1
            self.out += 1
            try:
                yield self.handed
            finally:
                self.out -= 1


async def hold(shares: ConnectionShares, org: str, release: asyncio.Event) -> None:
    async with shares.acquire(org):
        await release.wait()


async def test_an_account_holds_at_most_its_share_and_another_still_gets_a_connection() -> None:
    pool = FakePool(size=4)
    shares = ConnectionShares(pool, per_organization=2)  # type: ignore[arg-type]
    release = asyncio.Event()
    flood = [asyncio.create_task(hold(shares, "attacker", release)) for _ in range(10)]
    await asyncio.sleep(0.01)
    assert pool.out == 2  # eight of the attacker's calls wait for its own share
    async with asyncio.timeout(1), shares.acquire("victim") as conn:
        assert conn == 3 and pool.out == 3
    release.set()
    await asyncio.gather(*flood)
    assert pool.handed == 11 and pool.out == 0


async def test_an_accounts_calls_past_its_share_wait_their_turn_and_all_run() -> None:
    pool = FakePool(size=10)
    shares = ConnectionShares(pool, per_organization=2)  # type: ignore[arg-type]
    most = 0

    async def use() -> None:
        nonlocal most
        async with shares.acquire("org"):
            most = max(most, pool.out)
            await asyncio.sleep(0.002)

    await asyncio.gather(*(use() for _ in range(9)))
    assert most == 2 and pool.handed == 9 and pool.out == 0


def test_an_account_gets_half_the_pool_and_never_none() -> None:
    assert [share_of(n) for n in (1, 2, 3, 10, 11)] == [1, 1, 1, 5, 5]
    with pytest.raises(ValueError, match="at least 1"):
        ConnectionShares(FakePool(1), per_organization=0)  # type: ignore[arg-type]
