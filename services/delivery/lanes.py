"""Bounded concurrency: overall, and per webhook so one slow endpoint cannot hold the rest.

A webhook's lane takes at most `per_webhook_backlog` deliveries (running or waiting for one
of its slots); past that the caller leaves the delivery in Postgres for later. Running
attempts also share `max_in_flight` global slots, taken only once the lane's own slot is
held, so waiting deliveries of a dead endpoint never hold one. A webhook whose last
`degraded_after` attempts all failed at the network level (timeouts, refused connections)
runs one attempt at a time until one gets an answer: a dead endpoint holds one global slot,
not `per_webhook_concurrency` of them.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from uuid import UUID

# Webhooks whose failures are remembered at most (the oldest are forgotten first).
_MAX_REMEMBERED = 100_000


@dataclass
class _Lane:
    running: int = 0
    admitted: int = 0
    waiting: int = 0
    # Made on the first wait: most lanes never wait, and a lane is made anew every time it
    # empties (a Condition per delivery was 3 % of delivery's CPU at full load).
    turn: asyncio.Condition | None = None


@dataclass
class Lanes:
    max_in_flight: int
    per_webhook_concurrency: int
    per_webhook_backlog: int
    # How many admitted deliveries (all lanes) before the consumers stop fetching.
    max_admitted: int
    degraded_after: int = 3
    _global: asyncio.Semaphore = field(init=False)
    _lanes: dict[UUID, _Lane] = field(init=False, default_factory=dict)
    _failures: OrderedDict[UUID, int] = field(init=False, default_factory=OrderedDict)
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

    def degraded(self, webhook_id: UUID) -> bool:
        """Its last `degraded_after` attempts all failed at the network level."""
        return self._failures.get(webhook_id, 0) >= self.degraded_after

    def concurrency(self, webhook_id: UUID) -> int:
        return 1 if self.degraded(webhook_id) else self.per_webhook_concurrency

    def report(self, webhook_id: UUID, *, answered: bool) -> None:
        """After each attempt: did the endpoint answer at all (any HTTP status)?"""
        if answered:
            if self._failures.pop(webhook_id, None) is not None:
                self._wake(webhook_id)  # back to full concurrency
            return
        self._failures[webhook_id] = self._failures.get(webhook_id, 0) + 1
        self._failures.move_to_end(webhook_id)
        if len(self._failures) > _MAX_REMEMBERED:
            self._failures.popitem(last=False)

    def try_admit(self, webhook_id: UUID) -> bool:
        lane = self._lanes.setdefault(webhook_id, _Lane())
        if lane.admitted >= self.per_webhook_backlog:
            return False
        lane.admitted += 1
        self._admitted += 1
        return True

    async def run(self, webhook_id: UUID, work: Callable[[], Awaitable[None]]) -> None:
        """Run admitted work once a lane slot and a global slot are free."""
        lane = self._lanes[webhook_id]
        try:
            if lane.waiting or lane.running >= self.concurrency(webhook_id):
                await self._wait_turn(webhook_id, lane)  # takes the slot once it is free
            else:
                lane.running += 1
            try:
                async with self._global:
                    await work()
            finally:
                lane.running -= 1
                if lane.waiting and lane.turn is not None:
                    await _notify_all(lane.turn)
        finally:
            lane.admitted -= 1
            self._admitted -= 1
            if lane.admitted == 0:
                del self._lanes[webhook_id]
            self._changed.set()

    async def _wait_turn(self, webhook_id: UUID, lane: _Lane) -> None:
        """Queue behind the lane's running attempts (and earlier waiters) for a slot."""
        if lane.turn is None:
            lane.turn = asyncio.Condition()
        lane.waiting += 1
        try:
            async with lane.turn:
                await lane.turn.wait_for(lambda: lane.running < self.concurrency(webhook_id))
                lane.running += 1
        finally:
            lane.waiting -= 1

    def _wake(self, webhook_id: UUID) -> None:
        lane = self._lanes.get(webhook_id)
        if lane is not None and lane.turn is not None:
            asyncio.get_running_loop().create_task(_notify_all(lane.turn))

    async def wait_for_room(self) -> None:
        while self.room() == 0:
            self._changed.clear()
            await self._changed.wait()


async def _notify_all(turn: asyncio.Condition) -> None:
    async with turn:
        turn.notify_all()
