"""Code checks on save: at most N at once, a short queue, then ChecksBusy."""

from __future__ import annotations

import asyncio

import pytest

from services.registry.code_gate import ChecksBusy, CodeCheckGate


class HeldChecks:
    """A checker whose checks wait until released, counting how many ran at once."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.running = 0
        self.most = 0

    async def __call__(self, code: str, language: str) -> None:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.release.wait()
        finally:
            self.running -= 1


async def test_runs_at_most_n_at_once_queues_the_next_and_refuses_beyond():
    checks = HeldChecks()
    gate = CodeCheckGate(checks, at_once=2, queued=1)
    admitted = [asyncio.create_task(gate("x", "js")) for _ in range(3)]
    await asyncio.sleep(0)
    with pytest.raises(ChecksBusy) as busy:
        await gate("x", "js")
    assert busy.value.retry_after_s >= 1
    checks.release.set()
    await asyncio.gather(*admitted)
    assert checks.most == 2


async def test_a_failing_check_frees_its_slot():
    async def rejecting(code: str, language: str) -> None:
        raise ValueError("syntax")

    gate = CodeCheckGate(rejecting, at_once=1, queued=0)
    for _ in range(3):
        with pytest.raises(ValueError):
            await gate("x", "js")


async def test_a_cancelled_waiter_leaves_the_queue():
    checks = HeldChecks()
    gate = CodeCheckGate(checks, at_once=1, queued=1)
    running = asyncio.create_task(gate("x", "js"))
    waiting = asyncio.create_task(gate("x", "js"))
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    queued_again = asyncio.create_task(gate("x", "js"))  # the queue has room again
    await asyncio.sleep(0)
    checks.release.set()
    await asyncio.gather(running, queued_again)
