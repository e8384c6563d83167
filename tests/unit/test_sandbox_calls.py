"""RunCalls: a run's binding calls and fetches, bounded in number and in how many at once."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from services.workflow_runner.sandbox import FetchRequest, FetchResponse, SandboxSettings
from services.workflow_runner.sandbox.calls import RunCalls
from services.workflow_runner.sandbox.protocol import Call


class GatedBindings:
    """Answers once the test opens the gate; counts how many calls wait at once."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.waiting = 0
        self.most_at_once = 0

    async def _held(self) -> None:
        self.waiting += 1
        self.most_at_once = max(self.most_at_once, self.waiting)
        await self.gate.wait()
        self.waiting -= 1

    async def call(self, method: str, args: list[Any]) -> Any:
        await self._held()
        return {"id": "room"}

    async def fetch(self, request: FetchRequest) -> FetchResponse:
        await self._held()
        return FetchResponse(200, {}, b"ok")


async def test_a_run_holds_at_most_its_share_of_calls_at_once_and_refuses_past_its_cap():
    settings = SandboxSettings(max_calls_per_run=30, max_fetches_per_run=10)
    bindings = GatedBindings()
    calls = RunCalls("run-1", bindings, settings, structlog.get_logger())
    wire = [{"url": "https://example.com/", "method": "GET", "headers": [], "body": None}]
    answers = [
        asyncio.create_task(calls.answer(Call("run-1", n, "room.get", []))) for n in range(40)
    ] + [
        asyncio.create_task(calls.answer(Call("run-1", 100 + n, "fetch", wire))) for n in range(15)
    ]
    await asyncio.sleep(0)  # every call has started, the refused ones have their answer
    refused = [t.result() for t in answers if t.done()]
    assert len(refused) == 15 and all(not r["ok"] for r in refused)
    assert bindings.waiting == settings.max_concurrent_calls_per_run
    bindings.gate.set()
    replies = await asyncio.gather(*answers)
    assert sum(r["ok"] for r in replies) == 30 + 10
    assert bindings.most_at_once == settings.max_concurrent_calls_per_run
