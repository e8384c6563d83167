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
"""

from __future__ import annotations

import time
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
    """When (monotonic s) and, summed over the process's threads, how long they had waited for
    a CPU and how much CPU time they had had (s)."""

    at: float
    waited_s: float
    ran_s: float


def waited(pid: int | None, proc: Path = Path("/proc")) -> Waited | None:
    """Process `pid`'s threads' CPU time and wait for a CPU so far (schedstat's first two
    fields, summed; threads gone meanwhile left out), or None when there is no process or no
    thread could be read."""
    if pid is None:
        return None
    try:
        tids = [int(task.name) for task in (proc / str(pid) / "task").iterdir()]
    except (OSError, ValueError):
        return None
    read = [times for tid in tids if (times := schedstat(pid, tid, proc)) is not None]
    if not read:
        return None
    return Waited(time.monotonic(), sum(w for _, w in read) / 1e9, sum(r for r, _ in read) / 1e9)


def _shares(before: Waited | None, after: Waited | None) -> tuple[float, float] | None:
    """(waited, ran) over the span between two readings, each as a share of it."""
    if before is None or after is None or after.at <= before.at:
        return None
    span = after.at - before.at
    return (after.waited_s - before.waited_s) / span, (after.ran_s - before.ran_s) / span


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
