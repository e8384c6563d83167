"""One run's binding calls and fetches, as Python answers them: the per-run limits, what the
workflow's code may see of a failure, and what only our logs see."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from services.workflow_runner.sandbox import protocol
from services.workflow_runner.sandbox.models import (
    BindingError,
    Bindings,
    FetchRefused,
    SandboxSettings,
)


class RunCalls:
    """Calls of one run: counted against its limits (over them: refused at once), answered
    at most `max_concurrent_calls_per_run` at a time, all cancelled when the run ends (its
    Worker is gone or done; a late answer would reach nobody)."""

    def __init__(self, run_id: str, bindings: Bindings, settings: SandboxSettings, log: Any):
        self.run_id = run_id
        self.done: asyncio.Future[protocol.Done] = asyncio.get_running_loop().create_future()
        self._bindings = bindings
        self._settings = settings
        self._log = log
        self._calls = 0
        self._fetches = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight = asyncio.Semaphore(settings.max_concurrent_calls_per_run)

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def end(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self.done.done() and not self.done.cancelled():
            with contextlib.suppress(Exception):
                self.done.exception()  # retrieved: a crash nobody awaited is not an error

    async def answer(self, call: protocol.Call) -> dict[str, Any]:
        """The reply message for `call`; never raises for what the code or bindings did."""
        if call.method == "fetch":
            return await self._fetch(call)
        return await self._binding(call)

    async def _binding(self, call: protocol.Call) -> dict[str, Any]:
        cap = self._settings.max_calls_per_run
        self._calls += 1
        if self._calls > cap:
            return protocol.reply_error(
                call.run_id, call.call_id, f"binding call limit reached ({cap} per run)"
            )
        try:
            async with self._in_flight:
                value = await self._bindings.call(call.method, call.args)
        except BindingError as exc:
            return protocol.reply_error(call.run_id, call.call_id, str(exc)[:1000])
        except Exception as exc:  # noqa: BLE001 - the code sees a rejected promise; we log
            self._log.warning(
                "sandbox.binding_failed", run_id=call.run_id, method=call.method, error=repr(exc)
            )
            return protocol.reply_error(
                call.run_id, call.call_id, f"{call.method}() failed (internal error)"
            )
        return protocol.reply_ok(call.run_id, call.call_id, value)

    async def _fetch(self, call: protocol.Call) -> dict[str, Any]:
        cap = self._settings.max_fetches_per_run
        self._fetches += 1
        if self._fetches > cap:
            return protocol.reply_error(
                call.run_id, call.call_id, f"fetch limit reached ({cap} per run)"
            )
        try:
            request = protocol.fetch_request_from_wire(
                call.args, max_body_bytes=self._settings.max_fetch_body_bytes
            )
        except ValueError as exc:
            return protocol.reply_error(call.run_id, call.call_id, str(exc))
        where = f"fetch {request.method} {request.url}"
        try:
            async with self._in_flight:
                response = await self._bindings.fetch(request)
        except FetchRefused as exc:
            return protocol.reply_error(call.run_id, call.call_id, f"{where} refused: {exc}")
        except Exception as exc:  # noqa: BLE001 - the code sees a rejected promise; we log
            self._log.warning("sandbox.fetch_failed", run_id=call.run_id, error=repr(exc))
            return protocol.reply_error(call.run_id, call.call_id, f"{where} failed")
        wire = protocol.fetch_response_to_wire(response)
        return protocol.reply_ok(call.run_id, call.call_id, wire)
