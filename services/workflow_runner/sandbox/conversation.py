"""The conversation with one host over its socket: runs written, the host's messages handled.

JSON lines both ways (protocol.py). The host says a run is `done`, asks for a binding `call` or
fetch (answered from the run's Bindings, calls.py), asks how much `cpu` its blocked Workers'
threads used, says a Worker is `blocked` (the host's scheduling group drops) or `calm` again,
asks to `demote` a Worker's thread, and says a Worker is `stuck` past the CPU limit. Anything
it sends is untrusted: a line that breaks the protocol kills the host.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from services.workflow_runner.sandbox import protocol
from services.workflow_runner.sandbox.calls import RunCalls
from services.workflow_runner.sandbox.models import RunRequest, SandboxSettings
from services.workflow_runner.sandbox.process import HostProcess

INIT_MAX_BYTES = 16 * 1024 * 1024  # the init message carries the Worker prelude


def run_line(request: RunRequest, settings: SandboxSettings) -> bytes | str:
    """The run's line for the socket, or why it cannot be sent."""
    try:
        message = protocol.run_message(
            run_id=request.run_id,
            workflow_id=request.workflow_id,
            version=request.version,
            language=request.language,
            code=request.code,
            event=request.event,
            timeout_ms=int(settings.wall_timeout_s * 1000),
        )
        return protocol.encode(message, max_bytes=settings.max_message_bytes)
    except protocol.MessageTooLarge as exc:
        return f"the workflow's code and event are too large for the sandbox: {exc}"
    except (TypeError, ValueError):
        return "the event is not JSON"


class Conversation:
    """One host's socket and the runs it carries. `on_stuck` hears of a Worker past the CPU
    limit, with its workflow when the host named one."""

    def __init__(
        self,
        *,
        settings: SandboxSettings,
        process: HostProcess,
        on_stuck: Callable[[str | None], None],
        log: Any,
    ) -> None:
        self.log = log
        self.runs: dict[str, RunCalls] = {}
        self.idle = asyncio.Event()  # set while no run is under way
        self.idle.set()
        self.workers = 0  # live Workers, as the host last reported
        self._settings = settings
        self._process = process
        self._on_stuck = on_stuck
        self._blocked = False  # host.ts said "blocked" and not "calm" since
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._write_lock = asyncio.Lock()
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {
            "call": self._on_call,
            "done": self._on_done,
            "cpu": self._on_cpu,
            "blocked": self._on_blocked,
            "calm": self._on_blocked,
            "demote": self._on_demote,
            "stuck": self._on_stuck_message,
        }

    async def open(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, prelude: str
    ) -> str:
        """Send init (with the Worker prelude) on the host's connection; the Deno version of
        its "ready". Raises TimeoutError, IncompleteReadError or ProtocolError without one."""
        self._reader, self._writer = reader, writer
        init = protocol.init_message(self._settings, prelude)
        await self.write(protocol.encode(init, max_bytes=INIT_MAX_BYTES))
        timeout_s = self._settings.host_start_timeout_s
        line = await asyncio.wait_for(reader.readuntil(b"\n"), timeout_s)
        return protocol.parse_ready(protocol.decode(line))

    def close(self) -> None:
        """EOF on the socket: the host exits."""
        if self._writer is not None:
            with contextlib.suppress(OSError):
                self._writer.close()

    async def write(self, data: bytes) -> None:
        assert self._writer is not None
        async with self._write_lock:
            self._writer.write(data)
            await self._writer.drain()

    @contextlib.asynccontextmanager
    async def carrying(self, run: RunCalls) -> AsyncIterator[None]:
        """The run is under way on this host: its calls are answered, the host ranked by it."""
        self.runs[run.run_id] = run
        self.idle.clear()
        self._rank()
        try:
            yield
        finally:
            self.runs.pop(run.run_id, None)
            if not self.runs:
                self.idle.set()
            self._rank()
            run.end()

    def fail_runs(self, error: BaseException) -> int:
        """Every run under way fails with `error` (the host died); how many it carried."""
        carried = list(self.runs.values())
        for run in carried:
            if not run.done.done():
                run.done.set_exception(error)
        return len(carried)

    async def read(self) -> None:
        """Handle what the host says until EOF; a broken protocol kills the host."""
        assert self._reader is not None
        try:
            while True:
                try:
                    line = await self._reader.readuntil(b"\n")
                except asyncio.IncompleteReadError:
                    return  # EOF: the host is gone
                except asyncio.LimitOverrunError as exc:
                    raise protocol.ProtocolError("a line over the size limit") from exc
                message = protocol.decode(line)
                handler = self._handlers.get(message["t"])
                if handler is not None:
                    await handler(message)
        except protocol.ProtocolError as exc:
            self.log.error("sandbox.host_protocol_error", error=str(exc))
            self._process.kill(f"the sandbox broke its protocol ({exc})")
        except OSError as exc:
            self.log.warning("sandbox.host_socket_error", error=repr(exc))

    def _rank(self) -> None:
        self._process.rank(blocked=self._blocked, runs=len(self.runs))

    async def _on_done(self, message: dict[str, Any]) -> None:
        done = protocol.parse_done(message, self._settings)
        self.workers = done.workers
        run = self.runs.get(done.run_id)
        if run is not None and not run.done.done():
            run.done.set_result(done)

    async def _on_call(self, message: dict[str, Any]) -> None:
        call = protocol.parse_call(message)
        run = self.runs.get(call.run_id)
        if run is not None:  # else the run ended meanwhile
            run.spawn(self._answer(run, call))

    async def _on_cpu(self, message: dict[str, Any]) -> None:
        """How much CPU time each named Worker thread has used (host.ts's CPU limit)."""
        threads = self._process.threads
        if threads is None:
            return
        names = protocol.parse_cpu_question(
            message, max_threads=self._settings.max_workers_per_host
        )
        answer = protocol.cpu_message(threads.cpu_ns(names))
        await self.write(protocol.encode(answer, max_bytes=self._settings.max_message_bytes))

    async def _on_blocked(self, message: dict[str, Any]) -> None:
        """A Worker stays blocked ("blocked"): the host's group drops; none does ("calm")."""
        self._blocked = message["t"] == "blocked"
        self._rank()

    async def _on_demote(self, message: dict[str, Any]) -> None:
        threads = self._process.threads
        if threads is not None:
            demoted = threads.demote(message.get("thread"))
            self.log.info("sandbox.worker_demoted", thread=message.get("thread"),
                          demoted=demoted)  # fmt: skip

    async def _on_stuck_message(self, message: dict[str, Any]) -> None:
        workflow = message.get("workflow")
        self.log.warning("sandbox.worker_stuck", cpu_ms=message.get("cpu_ms"),
                         blocked_ms=message.get("blocked_ms"))  # fmt: skip
        self._on_stuck(workflow if isinstance(workflow, str) else None)

    async def _answer(self, run: RunCalls, call: protocol.Call) -> None:
        reply = await run.answer(call)
        limit = self._settings.max_message_bytes
        try:
            data = protocol.encode(reply, max_bytes=limit)
        except protocol.MessageTooLarge:
            error = f"{call.method}(): the answer is too large for the sandbox"
            data = protocol.encode(
                protocol.reply_error(call.run_id, call.call_id, error), max_bytes=limit
            )
        except (TypeError, ValueError):
            self.log.error("sandbox.binding_not_json", method=call.method)
            error = f"{call.method}() failed (internal error)"
            data = protocol.encode(
                protocol.reply_error(call.run_id, call.call_id, error), max_bytes=limit
            )
        with contextlib.suppress(OSError, AssertionError):
            await self.write(data)
