"""Whether a host waited for a CPU: a host that answers late while it waits for one is short
of CPU, not wedged, and a run that went past its wall time while its host was starved did not
take that time itself.

Read from Linux's /proc/<pid>/task/*/schedstat, every thread of the host: the CPU time each
has had, and how long each was runnable but waited for a CPU. A host is waiting for a CPU over
a span when its threads waited WAITING_SHARE of it or more (summed over them); starved, when
they waited STARVED_SHARE of it or more while they had less than STARVED_RAN of a CPU in all:
the machine's other work (the runner, Postgres, the broker, other accounts' hosts; a
quarantine's host runs at the lowest priority) took it. A host whose own runs crowd each
other waits too, but runs on every core it gets: that is the workflow's own load, not
starvation. A thread blocked on another (the main thread while a starved Worker holds it up)
waits for nothing itself, which is why every thread counts.

Threads come and go (a host ends a Worker's thread when its run is done or it idles out), so
a span is judged thread by thread: what each thread of the later reading grew by since the
earlier one, the whole of a thread born meanwhile; a thread that ended meanwhile is left out
(its last stretch cannot be read). The difference of two sums over whichever threads were
there would lose a finished Worker's whole past wait, and could make a host that waited for
most of the span look as if it waited less than nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.workflow_runner.sandbox.worker_threads import schedstat

# Waiting for a CPU over a span: its threads waited this share of it or more. Starved: they
# waited STARVED_SHARE of it or more and ran less than STARVED_RAN of a CPU in all. (Every
# thread's wait counts, so a loaded machine's many short waits add up: starved asks more.)
WAITING_SHARE = 0.25
STARVED_SHARE = 0.5
STARVED_RAN = 0.5


@dataclass(frozen=True)
class Waited:
    """When (monotonic s) and, for each thread of the process by id, how much CPU time it had
    had and how long it had waited for a CPU (ns)."""

    at: float
    threads: Mapping[int, tuple[int, int]]

    @property
    def ran_s(self) -> float:
        return sum(ran for ran, _ in self.threads.values()) / 1e9

    @property
    def waited_s(self) -> float:
        return sum(wait for _, wait in self.threads.values()) / 1e9


def waited(pid: int | None, proc: Path = Path("/proc")) -> Waited | None:
    """Process `pid`'s threads' CPU time and wait for a CPU so far (schedstat's first two
    fields; a thread gone meanwhile left out), or None when there is no process or no thread
    could be read."""
    if pid is None:
        return None
    try:
        tids = [int(task.name) for task in (proc / str(pid) / "task").iterdir()]
    except (OSError, ValueError):
        return None
    read = {tid: times for tid in tids if (times := schedstat(pid, tid, proc)) is not None}
    if not read:
        return None
    return Waited(time.monotonic(), read)


def _shares(before: Waited | None, after: Waited | None) -> tuple[float, float] | None:
    """(waited, ran) over the span between two readings, each as a share of it: each thread
    of `after` less its reading in `before`, whole when it was not there (born meanwhile, or
    its id reused: its times went back)."""
    if before is None or after is None or after.at <= before.at:
        return None
    waited_ns = ran_ns = 0
    for tid, (ran, wait) in after.threads.items():
        ran_then, wait_then = before.threads.get(tid, (0, 0))
        if ran < ran_then or wait < wait_then:
            ran_then = wait_then = 0
        ran_ns += ran - ran_then
        waited_ns += wait - wait_then
    span = after.at - before.at
    return waited_ns / 1e9 / span, ran_ns / 1e9 / span


def waiting_for_cpu(before: Waited | None, after: Waited | None) -> bool:
    """Whether the threads waited for a CPU WAITING_SHARE of the span or more: a host late to
    answer then is short of CPU, not wedged. False when it cannot be told."""
    shares = _shares(before, after)
    return shares is not None and shares[0] >= WAITING_SHARE


def starved(before: Waited | None, after: Waited | None) -> bool:
    """Whether the threads were starved over the span: waiting for a CPU while they ran less
    than STARVED_RAN of one (see the module). False when it cannot be told."""
    shares = _shares(before, after)
    return shares is not None and shares[0] >= STARVED_SHARE and shares[1] < STARVED_RAN
