"""A host's memory bound where no cgroup gives one (no cgroup v2, or not delegated to us).

The V8 heap limit does not cover ArrayBuffers, WebAssembly memory or node:sqlite's: measured
on deno 2.9.8 without cgroups, a run filled 2 GB of ArrayBuffers (memory_max_mb was 256) and
succeeded. So Python reads the host's resident memory every POLL_S and kills the host over
the limit, as the kernel would at memory.max. An allocator can overshoot by what it writes
in one interval (about 50 MB here).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

POLL_S = 0.1
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def resident_bytes(pid: int, proc: Path = Path("/proc")) -> int | None:
    """The process's resident set (statm's second field), or None once it is gone."""
    try:
        return int((proc / str(pid) / "statm").read_text().split()[1]) * PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return None


async def watch(
    pid: int,
    *,
    limit_bytes: int,
    alive: Callable[[], bool],
    on_over: Callable[[int], None],
) -> None:
    """Until the process ends: call `on_over(resident bytes)` once it is over the limit."""
    while alive():
        resident = resident_bytes(pid)
        if resident is None:
            return
        if resident > limit_bytes:
            on_over(resident)
            return
        await asyncio.sleep(POLL_S)
