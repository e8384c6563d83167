"""How a service process lives: it serves until SIGTERM or SIGINT, then stops gracefully.

`run_until_signalled(build)` is every long-running service's `run()`: the signal handlers go
in first (a signal during the start is kept, not lost), then the service is built, started,
left serving until a signal, and stopped. A service whose start must itself give way to a
signal (it waits for a broker) takes only `stop_requested()` and keeps its own shape.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Protocol

# Kubernetes sends SIGTERM; a terminal's Ctrl-C sends SIGINT. Both mean "stop gracefully".
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Runnable(Protocol):
    """A service the process runs: `start()` builds and starts everything it needs and
    returns once it serves; `stop()` drains it and closes what `start()` opened, within the
    service's own grace period. `stop()` is called once, only after `start()` returned."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def stop_requested() -> asyncio.Event:
    """An event that SIGTERM or SIGINT sets, on the running loop (replacing any handler)."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stopping.set)
    return stopping


async def run_until_signalled(build: Callable[[], Runnable]) -> None:
    """Build the service, start it, serve until SIGTERM or SIGINT, then stop it.

    What `build` or `start()` raises propagates unhandled (no `stop()`): a service that cannot
    be built says so there (e.g. logs and raises `SystemExit(1)`).
    """
    stopping = stop_requested()
    service = build()
    await service.start()
    try:
        await stopping.wait()
    finally:
        await service.stop()
