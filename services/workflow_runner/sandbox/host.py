"""One host: a Deno host process (process.py) and the conversation with it (conversation.py).

A host carries several runs at once (bounded by the caller). When it dies (V8 heap limit,
cgroup OOM kill or memory watch, a crash, or killed by us because it stopped answering while
nobody waited for a CPU: starvation.py), every run it carried ends as an error that says so;
the caller starts a new host.

A host is also retired, drained and killed after a run timed out or a Worker went past the
CPU limit (host.ts: its event loop stayed blocked, it answered no ping): on deno 2.9.8
`worker.terminate()` does not stop a synchronous loop (denoland/deno#35657), so the Worker's
thread spins on until the process ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from services.workflow_runner.sandbox import protocol
from services.workflow_runner.sandbox.calls import RunCalls
from services.workflow_runner.sandbox.cgroup import Cgroups
from services.workflow_runner.sandbox.conversation import Conversation, run_line
from services.workflow_runner.sandbox.diagnosis import OutputTail
from services.workflow_runner.sandbox.launch import HOST_NICE
from services.workflow_runner.sandbox.models import (
    Bindings,
    RunOutcome,
    RunRequest,
    SandboxSettings,
)
from services.workflow_runner.sandbox.process import (
    EXIT_WAIT_S,
    HostPaths,
    HostProcess,
    HostStartFailed,
)
from services.workflow_runner.sandbox.starvation import Waited, starved, waited, waiting_for_cpu

log = structlog.get_logger(__name__)

__all__ = ["Host", "HostCrashed", "HostPaths", "HostStartFailed"]

# How long past the wall-time limit Python waits for a host's answer before it kills the host
# (the host's own timer stops the Worker at the limit; this catches a wedged host).
ANSWER_GRACE_S = 2.0
# A host that is late while it, or the runner reading its answers, waits for a CPU
# (starvation.py) is short of CPU, not wedged: it gets another grace, and another while that
# lasts, up to this long past the wall time. Killing it would fail every run it carries and
# start a host for each of them again, on a machine that has no CPU to spare for either.
STARVED_ANSWER_MAX_S = 60.0
# A run's timeout is judged from the host's threads' wait read at most this long before the
# run began (each reading reads a file per thread: not one per run).
WAITED_REREAD_S = 1.0

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class HostCrashed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Host:
    """One host process (process.py) and the conversation with it (conversation.py). `died`
    is set once the process is gone, with `death_reason`. `on_death` hears of a death we did
    not cause by closing it, `on_stuck` of a Worker past the CPU limit (with its workflow,
    when the host named it)."""

    def __init__(
        self,
        index: int,
        generation: int,
        *,
        settings: SandboxSettings,
        paths: HostPaths,
        cgroups: Cgroups,
        nice: int = HOST_NICE,
        on_death: Callable[[Host], None] = lambda host: None,
        on_stuck: Callable[[Host, str | None], None] = lambda host, workflow: None,
    ) -> None:
        self.index = index
        self.generation = generation
        self.died = asyncio.Event()
        self.death_reason: str | None = None
        self.retiring = False  # takes no new runs; killed once its runs are done
        # Connected and answered init: a run may be written to it.
        self.started = False
        self._log = log.bind(host=index, generation=generation)
        self.process = HostProcess(f"{index}-{generation}", settings=settings, paths=paths,
                                   cgroups=cgroups, nice=nice, log=self._log)  # fmt: skip
        self._conversation = Conversation(
            settings=settings,
            process=self.process,
            on_stuck=lambda workflow: on_stuck(self, workflow),
            log=self._log,
        )
        self._settings = settings
        self._paths = paths
        self._on_death = on_death
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self._waited: Waited | None = None  # the last reading of its threads' wait

    def adopt(self, index: int, generation: int) -> None:
        """A spare host becomes position `index`'s."""
        self.index, self.generation = index, generation
        self._log = log.bind(host=index, generation=generation)
        self.process.log = self._conversation.log = self._log

    @property
    def pid(self) -> int | None:
        return self.process.pid

    @property
    def nice(self) -> int:
        return self.process.nice

    @property
    def stdout(self) -> OutputTail:
        return self.process.stdout

    @property
    def stderr(self) -> OutputTail:
        return self.process.stderr

    @property
    def workers(self) -> int:
        """Live Workers, as the host last reported."""
        return self._conversation.workers

    @property
    def alive(self) -> bool:
        process = self.process
        return process.spawned and not self.died.is_set() and process.kill_reason is None

    @property
    def usable(self) -> bool:
        """Takes new runs: alive and not retiring."""
        return self.alive and not self.retiring

    @property
    def in_flight(self) -> int:
        return len(self._conversation.runs)

    # --- life cycle

    async def start(self) -> None:
        """Spawn, connect, init. On any failure (or cancellation) the process is killed."""
        try:
            await self._start()
        except BaseException:
            await self.process.abandon()
            raise

    async def _start(self) -> None:
        socket = self._paths.workdir / f"host-{self.index}-{self.generation}.sock"
        connected: asyncio.Future[Connection] = asyncio.get_running_loop().create_future()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if connected.done():  # one connection per host, ever
                writer.close()
            else:
                connected.set_result((reader, writer))

        socket.unlink(missing_ok=True)
        server = await asyncio.start_unix_server(
            on_connect, path=str(socket), limit=self._settings.max_message_bytes + 1
        )
        try:
            socket.chmod(0o600)
            await self.process.spawn(socket)
            reader, writer = await self._connection(connected)
        finally:
            server.close()  # nothing else may connect; the host's connection stays
            socket.unlink(missing_ok=True)
        try:
            deno = await self._conversation.open(reader, writer, prelude=self._paths.prelude)
        except (TimeoutError, asyncio.IncompleteReadError, protocol.ProtocolError) as exc:
            what = f"host {self.index} did not answer init ({type(exc).__name__})"
            raise await self.process.start_failed(what) from None
        self._supervisor = asyncio.create_task(self._supervise())
        self.started = True
        self._log.info("sandbox.host_started", pid=self.pid, deno=deno,
                       autogroup=self.process.autogroup)  # fmt: skip

    async def _connection(self, connected: asyncio.Future[Connection]) -> Connection:
        """The host's connection to its socket, unless it exits or takes too long."""
        exited = asyncio.ensure_future(self.process.wait())
        await asyncio.wait(
            {connected, exited},
            timeout=self._settings.host_start_timeout_s,
            return_when="FIRST_COMPLETED",
        )
        exited.cancel()
        if not connected.done():
            raise await self.process.start_failed(f"host {self.index} did not connect")
        return connected.result()

    async def close(self, *, kill: bool = False) -> None:
        """End the host: EOF on its socket makes it exit; killed if it does not (or at once)."""
        self._closing = True
        self._conversation.close()
        await self.process.stop(kill=kill)
        if self._supervisor is not None:
            await asyncio.gather(self._supervisor, return_exceptions=True)

    async def wait_idle(self, timeout_s: float) -> bool:
        """True once no run is under way here; False if runs still are after `timeout_s`."""
        try:
            await asyncio.wait_for(self._conversation.idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def drain_and_close(self) -> None:
        """Retire: no new runs; once those under way are done, kill the process."""
        self.retiring = True
        await self._conversation.idle.wait()
        await self.close(kill=True)

    def kill(self, reason: str) -> None:
        """SIGKILL this host (our own child, by pid); its runs fail with `reason`."""
        self.process.kill(reason)

    async def _supervise(self) -> None:
        """Wait for the socket to close or the process to exit; then fail what it carried."""
        reading = asyncio.create_task(self._conversation.read())
        exiting = asyncio.create_task(self.process.wait())
        await asyncio.wait({reading, exiting}, return_when="FIRST_COMPLETED")
        if not exiting.done():
            try:
                await asyncio.wait_for(asyncio.shield(exiting), EXIT_WAIT_S)
            except TimeoutError:
                self.process.kill()
                await exiting
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        self._conversation.close()
        reason = self.death_reason = self.process.death_reason()
        self.process.release()
        self.died.set()
        carried = self._conversation.fail_runs(HostCrashed(reason))
        if not self._closing:
            self._log.warning("sandbox.host_died", pid=self.pid, reason=reason,
                              returncode=self.process.returncode, runs=carried)  # fmt: skip
            self._on_death(self)

    # --- runs

    async def run(self, request: RunRequest, bindings: Bindings) -> RunOutcome:
        """Run on this host: every failure of the workflow, or of the host under it, is an
        outcome (`crashed` when the host died). Raises HostCrashed when it is dead already."""
        clock = _RunClock()
        if request.run_id in self._conversation.runs:
            return clock.failed("this run is already running")
        if not self.alive:
            raise HostCrashed(self.death_reason or "the sandbox host is not running")
        data = run_line(request, self._settings)
        if isinstance(data, str):
            return clock.failed(data)
        run = RunCalls(request.run_id, bindings, self._settings, self._log)
        began = self._recent_wait()
        async with self._conversation.carrying(run):
            try:
                await self._conversation.write(data)
                done = await self._answer_of(run)
            except HostCrashed as exc:
                return clock.crashed(exc.reason)
            except OSError:
                await self.died.wait()
                return clock.crashed(self.death_reason)
        if done.status == "timeout" and clock.elapsed_s() >= self._settings.wall_timeout_s:
            return self._timed_out(clock, done, began)  # the wall-time limit's timeout
        return clock.outcome(done.status, result=done.result, error=done.error, logs=done.logs,
                             cold=done.cold)  # fmt: skip

    def _timed_out(self, clock: _RunClock, done: protocol.Done, began: Waited | None) -> RunOutcome:
        """A timeout at the wall-time limit, `starved` when the host was starved of CPU over
        the run (a CPU-limit timeout came with "stuck", its strike taken already): its message
        then says so, since that time was the machine's, not the workflow's."""
        starved_run = starved(began, waited(self.pid))
        error = done.error
        if starved_run and error is not None:
            note = "; its sandbox was waiting for a CPU much of that time (an overloaded machine)"
            error = {**error, "message": f"{error.get('message', '')}{note}"}
        return clock.outcome("timeout", result=done.result, error=error, logs=done.logs,
                             cold=done.cold, starved=starved_run)  # fmt: skip

    def _recent_wait(self) -> Waited | None:
        """The host's threads' wait, read again when the last reading is older than
        WAITED_REREAD_S."""
        last = self._waited
        if last is None or time.monotonic() - last.at > WAITED_REREAD_S:
            last = self._waited = waited(self.pid)
        return last

    async def _answer_of(self, run: RunCalls) -> protocol.Done:
        """The host's "done" for the run; past the wall time and its grace, the host is killed
        (and the run fails with it), unless the host's threads, or ours (which read its
        answer), waited for a CPU over that grace: then it gets another, up to
        STARVED_ANSWER_MAX_S past the wall time."""
        wall = self._settings.wall_timeout_s
        try:
            return await asyncio.wait_for(asyncio.shield(run.done), wall)
        except TimeoutError:
            pass
        late = 0.0
        while True:
            before = waited(self.pid), waited(os.getpid())
            try:
                return await asyncio.wait_for(asyncio.shield(run.done), ANSWER_GRACE_S)
            except TimeoutError:
                late += ANSWER_GRACE_S
            after = waited(self.pid), waited(os.getpid())
            short = [waiting_for_cpu(b, a) for b, a in zip(before, after, strict=True)]
            if late >= STARVED_ANSWER_MAX_S or not any(short):
                break
            if late == ANSWER_GRACE_S:  # once a run: an overloaded machine has many late
                self._log.info("sandbox.host_short_of_cpu", pid=self.pid, run_id=run.run_id,
                               host_waiting=short[0], runner_waiting=short[1])  # fmt: skip
        self.kill(f"it stopped answering for {round(wall + late, 1)} s and was killed")
        return await run.done


class _RunClock:
    """A run's start (wall clock) and duration (monotonic), and the outcomes it makes."""

    def __init__(self) -> None:
        self.started_at = datetime.now(UTC)
        self._t0 = time.perf_counter()

    def elapsed_s(self) -> float:
        return time.perf_counter() - self._t0

    def outcome(self, status: str, **fields: Any) -> RunOutcome:
        elapsed = int(self.elapsed_s() * 1000)
        values = {"result": None, "error": None, "logs": [], "cold": False} | fields
        return RunOutcome(status=status, started_at=self.started_at, duration_ms=elapsed, **values)

    def failed(self, message: str, *, crashed: bool = False) -> RunOutcome:
        return self.outcome("error", error={"message": message, "stack": None}, crashed=crashed)

    def crashed(self, reason: str | None) -> RunOutcome:
        return self.failed(f"the sandbox crashed ({reason}); the run was stopped", crashed=True)
