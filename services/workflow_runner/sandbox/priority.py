"""A Worker's thread in a host, set to the lowest CPU priority (host.ts, "The CPU limit").

Deno names each Worker's OS thread `worker-<id>`, its ids counted per process from 1 (measured
on deno 2.9.8); host.ts numbers its Workers the same way and names the thread of one that
stays blocked. Renicing a thread of our own child needs no privilege: a nice value may always
be raised. The thread keeps it until it ends.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

THREAD_NAME = re.compile(r"worker-[0-9]{1,9}")
LOWEST = 19


def thread_id(pid: int, name: str, proc: Path = Path("/proc")) -> int | None:
    """The id of the thread of process `pid` named `name`, or None."""
    try:
        tasks = list((proc / str(pid) / "task").iterdir())
    except OSError:
        return None
    for task in tasks:
        try:
            if (task / "comm").read_text().strip() == name:
                return int(task.name)
        except (OSError, ValueError):
            continue
    return None


def demote(pid: int, name: object) -> bool:
    """Lower the priority of `pid`'s Worker thread `name`; False when there is none such."""
    if not isinstance(name, str) or not THREAD_NAME.fullmatch(name):
        return False
    tid = thread_id(pid, name)
    if tid is None:
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, tid, LOWEST)
    except OSError:
        return False
    return True
