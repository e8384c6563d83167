"""A bound on the code checks run at once: each is a Deno process or two (`deno doc`, ~20 MB;
`deno lint` too when the code imports or names Deno or process, ~120 MB and a core for up to a
few hundred ms: shared/code_facts.py), so a burst of saves waits in a short queue and past it
is refused."""

from __future__ import annotations

import asyncio

from services.registry.workflows.service import CodeChecker

RETRY_AFTER_S = 1  # a check takes well under a second; a full queue drains in about one


class ChecksBusy(Exception):
    """Every check slot is taken and the queue is full: try again in `retry_after_s`."""

    def __init__(self, retry_after_s: int = RETRY_AFTER_S) -> None:
        super().__init__("workflow code checks are all busy")
        self.retry_after_s = retry_after_s


class CodeCheckGate:
    """A CodeChecker that runs at most `at_once` checks, lets `queued` more wait, and raises
    ChecksBusy for any beyond."""

    def __init__(self, check: CodeChecker, *, at_once: int, queued: int) -> None:
        self._check = check
        self._slots = asyncio.Semaphore(at_once)
        self._queued = queued
        self._waiting = 0

    async def __call__(self, code: str, language: str) -> None:
        if self._slots.locked() and self._waiting >= self._queued:
            raise ChecksBusy()
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            await self._check(code, language)
        finally:
            self._slots.release()
