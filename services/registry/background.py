"""Loops that run beside the HTTP API for as long as a block does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import structlog

log = structlog.get_logger(__name__)


@contextlib.asynccontextmanager
async def running(loop: Coroutine[Any, Any, None], *, name: str) -> AsyncIterator[None]:
    """`loop` as a task while the block runs; cancelled, and waited for, when it ends."""
    task = asyncio.create_task(loop, name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def repeat(
    step: Callable[[], Awaitable[bool]],
    *,
    every_s: float,
    name: str,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Run `step` until cancelled: again at once while it answers True (a full batch, so more
    may wait), else after `every_s`. A failure is logged and tried again after `every_s`."""
    while True:
        try:
            more = await step()
        except Exception as exc:  # noqa: BLE001 - this loop's top-level catch: next period
            log.warning("registry.background_step_failed", loop=name, error=repr(exc))
            more = False
        if not more:
            await sleep(every_s)


def repeating(
    step: Callable[[], Awaitable[bool]], *, every_s: float, name: str
) -> contextlib.AbstractAsyncContextManager[None]:
    """`repeat(step)` while the block runs."""
    return running(repeat(step, every_s=every_s, name=name), name=name)
