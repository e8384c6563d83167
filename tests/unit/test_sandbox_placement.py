"""Placement: a position per organization from a bounded pool, LRU eviction of idle ones, a
bounded wait when all carry runs (no Deno here: positions are plain objects)."""

from __future__ import annotations

import asyncio

import pytest

from services.workflow_runner.sandbox.placement import Placement, PoolBusy, least_recent_idle


class Positions:
    def __init__(self) -> None:
        self.made: list[str] = []
        self.evicted: list[str] = []

    def make(self, key: object) -> str:
        self.made.append(str(key))
        return f"slot-{key}"

    def evict(self, key: object, slot: str) -> None:
        self.evicted.append(str(key))


def placement(size: int, positions: Positions, wait_s: float = 5.0) -> Placement[str]:
    return Placement(size, make=positions.make, evict=positions.evict, wait_s=wait_s)


def test_the_least_recently_used_idle_key_is_chosen() -> None:
    assert least_recent_idle(["a", "b", "c"], {"a": 1, "b": 0, "c": 0}) == "b"
    assert least_recent_idle(["a", "b"], {"a": 2, "b": 1}) is None


async def test_an_organization_keeps_its_position_and_each_has_its_own() -> None:
    positions = Positions()
    pool = placement(4, positions)
    a1, b, a2 = await pool.acquire("a"), await pool.acquire("b"), await pool.acquire("a")
    assert (a1, b, a2) == ("slot-a", "slot-b", "slot-a")
    assert positions.made == ["a", "b"] and positions.evicted == []


async def test_a_full_pool_evicts_its_least_recently_used_idle_position() -> None:
    positions = Positions()
    pool = placement(2, positions)
    for key in ("a", "b", "a"):  # b is now the least recently used
        await pool.acquire(key)
        pool.release(key)
    assert await pool.acquire("c") == "slot-c"
    assert positions.evicted == ["b"]
    assert sorted(key for key, _ in pool.items()) == ["a", "c"]


async def test_when_every_position_carries_runs_a_new_organization_waits_for_one() -> None:
    positions = Positions()
    pool = placement(1, positions)
    await pool.acquire("a")  # a run of a, under way
    waiting = asyncio.create_task(pool.acquire("b"))
    while pool.waiting == 0:
        await asyncio.sleep(0)
    assert not waiting.done() and positions.evicted == []  # never placed beside a
    pool.release("a")
    assert await waiting == "slot-b"
    assert positions.evicted == ["a"] and pool.waiting == 0


async def test_the_wait_for_a_position_is_bounded() -> None:
    pool = placement(1, Positions(), wait_s=0.05)
    await pool.acquire("a")
    with pytest.raises(PoolBusy):
        await pool.acquire("b")
    assert pool.waiting == 0
