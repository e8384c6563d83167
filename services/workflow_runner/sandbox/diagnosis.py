"""Why a host died, from what it left behind. Pure."""

from __future__ import annotations

import signal

OUTPUT_TAIL_BYTES = 8192


class OutputTail:
    """The last bytes of a host's stdout or stderr: for crash diagnosis only, never parsed as
    protocol, never logged whole (a workflow can write there only if a sandbox layer failed)."""

    def __init__(self, limit: int = OUTPUT_TAIL_BYTES) -> None:
        self.data = b""
        self.total = 0
        self._limit = limit

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.data = (self.data + chunk)[-self._limit :]


def death_reason(
    returncode: int | None, *, stderr: bytes, oom_kills: int, heap_mb: int, memory_max_mb: int
) -> str:
    """V8 prints "Fatal JavaScript out of memory" and traps (SIGTRAP) at its heap limit; the
    kernel SIGKILLs at the cgroup's memory.max and counts it in memory.events."""
    if b"out of memory" in stderr:
        return f"out of memory: over the JavaScript heap limit of {heap_mb} MB"
    if oom_kills > 0:
        return f"out of memory: over the memory limit of {memory_max_mb} MB"
    if returncode is not None and returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            pass
    return f"exit code {returncode}"
