"""Which host position a run goes to: one per organization (and lane), from a bounded pool.

An organization's runs never share a Deno process (one V8 process, its Workers, their heap
and threads) with another organization's: a crash, a heap bomb, a spinning thread or a timer
left running only ever hits its own account. Positions are assigned on demand; when the pool
is full and a new organization needs one, the least recently used idle position is evicted
(its host killed: its Workers are cold next time). When every position carries runs, the new
organization waits for one to become idle, at most `wait_s`; it is never placed beside
another organization.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

Key = Hashable
Slot = TypeVar("Slot")


class PoolBusy(Exception):
    """Every position carries runs of other organizations, and none became idle in time."""


def least_recent_idle(order: Iterable[Key], users: dict[Key, int]) -> Key | None:
    """The first key of `order` (least recently used first) with no run on it, or None."""
    return next((key for key in order if users[key] == 0), None)


class Placement(Generic[Slot]):
    """Positions by key, at most `size`; `acquire` and `release` bracket each run."""

    def __init__(
        self,
        size: int,
        *,
        make: Callable[[Key], Slot],
        evict: Callable[[Key, Slot], None],
        wait_s: float,
    ) -> None:
        self.size = size
        self._make = make
        self._evict = evict
        self._wait_s = wait_s
        self._slots: OrderedDict[Key, Slot] = OrderedDict()  # least recently used first
        self._users: dict[Key, int] = {}
        self._idle = asyncio.Event()  # set (and replaced) whenever a position becomes idle
        self.waiting = 0  # runs waiting for a position

    def items(self) -> list[tuple[Key, Slot]]:
        return list(self._slots.items())

    def get(self, key: Key) -> Slot | None:
        return self._slots.get(key)

    async def acquire(self, key: Key) -> Slot:
        """The position of `key`, assigned now if it has none: raises PoolBusy after waiting
        `wait_s` for an idle position to evict."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_s
        while True:
            slot = self._take(key)
            if slot is not None:
                return slot
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise PoolBusy(f"all {self.size} sandbox hosts carry other organizations' runs")
            self.waiting += 1
            try:
                await asyncio.wait_for(self._idle.wait(), remaining)
            except TimeoutError:
                continue  # the loop raises PoolBusy, unless a position just became free
            finally:
                self.waiting -= 1

    def release(self, key: Key) -> None:
        self._users[key] -= 1
        if self._users[key] == 0:
            self._idle.set()
            self._idle = asyncio.Event()

    def _take(self, key: Key) -> Slot | None:
        """No await in here: check and assignment happen at once."""
        slot = self._slots.get(key)
        if slot is None:
            if len(self._slots) >= self.size:
                victim = least_recent_idle(self._slots, self._users)
                if victim is None:
                    return None
                evicted = self._slots.pop(victim)
                del self._users[victim]
                self._evict(victim, evicted)
            slot = self._slots[key] = self._make(key)
            self._users[key] = 0
        self._slots.move_to_end(key)
        self._users[key] += 1
        return slot
