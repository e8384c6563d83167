"""Bounded concurrency: overall, and per webhook so one slow endpoint cannot hold the rest.

A webhook's lane takes at most `per_webhook_backlog` deliveries (running or waiting for one
of its `per_webhook_concurrency` slots); past that the caller leaves the delivery in
Postgres for later. Running attempts also share `max_in_flight` global slots, taken only
once the lane's own slot is held, so waiting deliveries of a dead endpoint never hold one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from uuid import UUID


@dataclass
class _Lane:
    slots: asyncio.Semaphore
    admitted: int = 0


@dataclass
class Lanes:
    max_in_flight: int
    per_webhook_concurrency: int
    per_webhook_backlog: int
    # How many admitted deliveries (all lanes) before the consumers stop fetching.
    max_admitted: int
    _global: asyncio.Semaphore = field(init=False)
    _lanes: dict[UUID, _Lane] = field(init=False, default_factory=dict)
    _admitted: int = field(init=False, default=0)
    _changed: asyncio.Event = field(init=False, default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._global = asyncio.Semaphore(self.max_in_flight)

    @property
    def admitted(self) -> int:
        return self._admitted

    def room(self) -> int:
        return max(0, self.max_admitted - self._admitted)

    def saturated(self) -> list[UUID]:
        return [w for w, lane in self._lanes.items() if lane.admitted >= self.per_webhook_backlog]

    def try_admit(self, webhook_id: UUID) -> bool:
        lane = self._lanes.get(webhook_id)
        if lane is None:
            lane = self._lanes[webhook_id] = _Lane(asyncio.Semaphore(self.per_webhook_concurrency))
        if lane.admitted >= self.per_webhook_backlog:
            return False
        lane.admitted += 1
        self._admitted += 1
        return True

    async def run(self, webhook_id: UUID, work: Callable[[], Awaitable[None]]) -> None:
        """Run admitted work once a lane slot and a global slot are free."""
        lane = self._lanes[webhook_id]
        try:
            async with lane.slots, self._global:
                await work()
        finally:
            lane.admitted -= 1
            self._admitted -= 1
            if lane.admitted == 0:
                del self._lanes[webhook_id]
            self._changed.set()

    async def wait_for_room(self) -> None:
        while self.room() == 0:
            self._changed.clear()
            await self._changed.wait()
