"""A Worker's OS thread in a host: found by its name, its CPU time read, its priority lowered.

Deno names each Worker's OS thread `worker-<id>`, its ids counted per process from 1 (measured
on deno 2.9.8); host.ts numbers its Workers the same way and names the thread of one whose
event loop stays blocked (host.ts, "The CPU limit"). Python reads what the host may not: Deno
refuses a host without --allow-all any read of /proc/self. Renicing a thread of our own child
needs no privilege: a nice value may always be raised. The thread keeps it until it ends.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

THREAD_NAME = re.compile(r"worker-[0-9]{1,9}")
LOWEST = 19


def worker_threads(pid: int, proc: Path = Path("/proc")) -> dict[str, int]:
    """The ids of process `pid`'s Worker threads by name; empty when the process is gone."""
    try:
        tasks = list((proc / str(pid) / "task").iterdir())
    except OSError:
        return {}
    found = {}
    for task in tasks:
        try:
            name = (task / "comm").read_text().strip()
            if THREAD_NAME.fullmatch(name):
                found[name] = int(task.name)
        except (OSError, ValueError):
            continue
    return found


def schedstat(pid: int, tid: int, proc: Path = Path("/proc")) -> tuple[int, int] | None:
    """Thread `tid` of `pid`: the CPU time it has used and how long it has waited, runnable,
    for a CPU (ns, schedstat's first two fields), or None."""
    try:
        fields = (proc / str(pid) / "task" / str(tid) / "schedstat").read_text().split()
        return int(fields[0]), int(fields[1])
    except (OSError, ValueError, IndexError):
        return None


def cpu_ns(pid: int, tid: int, proc: Path = Path("/proc")) -> int | None:
    """The CPU time thread `tid` of `pid` has used (ns), or None."""
    times = schedstat(pid, tid, proc)
    return None if times is None else times[0]


class WorkerThreads:
    """One host's Worker threads, their ids remembered between lookups (a scan reads one file
    per thread of the host)."""

    def __init__(self, pid: int, proc: Path = Path("/proc")) -> None:
        self._pid = pid
        self._proc = proc
        self._ids: dict[str, int] = {}

    def thread_id(self, name: object) -> int | None:
        """The id of the Worker thread `name`; None for any other name, or one not found."""
        if not isinstance(name, str) or not THREAD_NAME.fullmatch(name):
            return None
        if name not in self._ids:
            self._ids = worker_threads(self._pid, self._proc)  # threads gone are forgotten
        return self._ids.get(name)

    def cpu_ns(self, names: list[str]) -> dict[str, int | None]:
        """Each named Worker thread's CPU time (ns); None where it cannot be read."""
        times: dict[str, int | None] = {}
        for name in names:
            tid = self.thread_id(name)
            times[name] = None if tid is None else cpu_ns(self._pid, tid, self._proc)
            if times[name] is None:
                self._ids.pop(name, None)
        return times

    def demote(self, name: object) -> bool:
        """Lower the priority of Worker thread `name`; False when there is none such."""
        tid = self.thread_id(name)
        if tid is None:
            return False
        try:
            os.setpriority(os.PRIO_PROCESS, tid, LOWEST)
        except OSError:
            return False
        return True
