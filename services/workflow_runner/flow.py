"""Run requests flow: each starts as soon as it is fetched and a place is free, not once the
batch fetched with it has ended.

At most `max_running` runs at once, at most `max_per_organization` of them for one
organization (one tenant's slow runs cannot take every place), and at most `max_waiting`
requests fetched and not yet started: the consumer fetches only while there is room, so
nothing is buffered without bound. A partition's offset is committed only up to its lowest
request not yet recorded: at-least-once, as the runner is idempotent on the run id.

`Offsets` and `startable` are pure; `RunFlow` holds the tasks.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger(__name__)

Partition = Any  # aiokafka's TopicPartition, or anything hashable in tests


@dataclass(frozen=True)
class Fetched:
    """One fetched run request; `request` None when it is not a valid request (done at once:
    the caller has put it in the DLQ)."""

    partition: Partition
    offset: int
    organization_id: str
    run_id: str
    request: Any


class Offsets:
    """Per partition, the offsets fetched and not yet done, and what may be committed."""

    def __init__(self) -> None:
        self._open: dict[Partition, set[int]] = {}
        self._next: dict[Partition, int] = {}
        self._committed: dict[Partition, int] = {}

    def fetched(self, partition: Partition, offset: int) -> bool:
        """Track a fetched offset; False when it is already open (fetched twice)."""
        open_ = self._open.setdefault(partition, set())
        if offset in open_:
            return False
        open_.add(offset)
        self._next[partition] = max(self._next.get(partition, 0), offset + 1)
        return True

    def done(self, partition: Partition, offset: int) -> None:
        self._open.get(partition, set()).discard(offset)

    def committable(self) -> dict[Partition, int]:
        """Per partition whose mark moved: its lowest open offset, or past its last one."""
        marks = {}
        for partition, next_offset in self._next.items():
            open_ = self._open.get(partition)
            mark = min(open_) if open_ else next_offset
            if mark != self._committed.get(partition):
                marks[partition] = mark
        return marks

    def committed(self, marks: Mapping[Partition, int]) -> None:
        self._committed.update(marks)

    def forget(self, partitions: Iterable[Partition]) -> None:
        """Partitions no longer ours: their marks are the new owner's to commit."""
        for partition in partitions:
            for table in (self._open, self._next, self._committed):
                table.pop(partition, None)


def startable(
    waiting: Sequence[Fetched], running: Mapping[str, int], *, free: int, per_organization: int
) -> list[int]:
    """The positions in `waiting` to start now, oldest first: at most `free`, and no
    organization past `per_organization` runs (`running` counts those under way)."""
    picked: list[int] = []
    counts = Counter(running)
    for position, item in enumerate(waiting):
        if len(picked) >= free:
            break
        if counts[item.organization_id] < per_organization:
            counts[item.organization_id] += 1
            picked.append(position)
    return picked


class RunFlow:
    """Starts fetched requests as places free up; tracks what may be committed.

    `run(request)` records one run; it retries by itself until it succeeds or the flow stops
    (a run that did not end is then not committed, and is read again)."""

    def __init__(
        self,
        run: Callable[[Any], Awaitable[None]],
        *,
        max_running: int,
        max_per_organization: int,
        max_waiting: int,
    ) -> None:
        self._run = run
        self._max_running = max_running
        self._per_org = max_per_organization
        self._max_waiting = max_waiting
        self.offsets = Offsets()
        self._waiting: list[Fetched] = []
        self._running: dict[asyncio.Task[None], Fetched] = {}
        self._by_run_id: dict[str, list[Fetched]] = {}  # the same run fetched again meanwhile
        self._progress = asyncio.Event()

    @property
    def room(self) -> int:
        """How many more requests may be fetched now."""
        held = len(self._waiting) + len(self._running)
        return max(0, self._max_running + self._max_waiting - held)

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def add(self, items: Iterable[Fetched]) -> None:
        for item in items:
            if not self.offsets.fetched(item.partition, item.offset):
                continue
            if item.request is None:
                self.offsets.done(item.partition, item.offset)
            elif item.run_id in self._by_run_id:  # under way already: done when that is
                self._by_run_id[item.run_id].append(item)
            else:
                self._by_run_id[item.run_id] = []
                self._waiting.append(item)
        self._start()

    async def wait_progress(self, timeout_s: float) -> None:
        """Until a run ends (or `timeout_s`)."""
        self._progress.clear()
        try:
            await asyncio.wait_for(self._progress.wait(), timeout_s)
        except TimeoutError:
            pass

    async def drain(self, timeout_s: float) -> None:
        """Start nothing more; wait up to `timeout_s` for the runs under way, then cancel
        those left (not committed: read again by the next consumer)."""
        self._waiting.clear()
        if not self._running:
            return
        _, left = await asyncio.wait(list(self._running), timeout=timeout_s)
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)

    def _start(self) -> None:
        organizations = Counter(item.organization_id for item in self._running.values())
        free = self._max_running - len(self._running)
        picked = startable(self._waiting, organizations, free=free, per_organization=self._per_org)
        for position in picked:
            item = self._waiting[position]
            task = asyncio.create_task(self._run(item.request), name=f"run {item.run_id}")
            self._running[task] = item
            task.add_done_callback(self._ended)
        for position in reversed(picked):
            del self._waiting[position]

    def _ended(self, task: asyncio.Task[None]) -> None:
        item = self._running.pop(task)
        again = self._by_run_id.pop(item.run_id, [])
        if not task.cancelled() and task.exception() is None:
            for done in (item, *again):
                self.offsets.done(done.partition, done.offset)
        elif not task.cancelled():
            log.error("workflows.run_abandoned", run_id=item.run_id, error=repr(task.exception()))
        self._progress.set()
        self._start()
