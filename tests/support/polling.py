"""`eventually(...)`: poll a condition instead of sleeping a guessed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]], *, timeout_s: float = 15.0, interval_s: float = 0.05
) -> T:
    """Await `probe` until it returns a truthy value and return it; fail after `timeout_s`.

    A probe that raises AssertionError counts as not yet; the last one is re-raised at the end.
    """
    deadline = time.monotonic() + timeout_s
    last_error: AssertionError | None = None
    while True:
        try:
            result = await probe()
            if result:
                return result
        except AssertionError as exc:
            last_error = exc
        if time.monotonic() > deadline:
            if last_error is not None:
                raise last_error
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(interval_s)
