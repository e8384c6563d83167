"""One Deno host process: started, fed runs over its socket, watched until it dies.

A host carries several runs at once (bounded by the caller). When it dies (V8 heap limit,
cgroup OOM kill or memory watch, a crash, or killed by us because it stopped answering),
every run it carried ends as an error that says so; the caller starts a new host.

A host is also retired, drained and killed after a run timed out or a Worker went past the
CPU limit (host.ts: its event loop stayed blocked, it answered no ping): on deno 2.9.8
`worker.terminate()` does not stop a synchronous loop (denoland/deno#35657), so the Worker's
thread spins on until the process ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import structlog

from services.workflow_runner.sandbox import autogroup, memory_watch, protocol
from services.workflow_runner.sandbox.calls import RunCalls
from services.workflow_runner.sandbox.cgroup import Cgroups
from services.workflow_runner.sandbox.diagnosis import OutputTail, death_reason
from services.workflow_runner.sandbox.launch import (
    HOST_NICE,
    host_command,
    host_env,
)
from services.workflow_runner.sandbox.models import (
    Bindings,
    RunOutcome,
    RunRequest,
    SandboxSettings,
)
from services.workflow_runner.sandbox.worker_threads import WorkerThreads

log = structlog.get_logger(__name__)

# How long past the wall-time limit Python waits for a host's answer before it kills the host
# (the host's own timer stops the Worker at the limit; this catches a wedged host).
ANSWER_GRACE_S = 2.0
EXIT_WAIT_S = 2.0


class HostCrashed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class HostStartFailed(Exception):
    """A host did not start or did not connect in time."""


@dataclass(frozen=True)
class HostPaths:
    deno: str
    workdir: Path  # private (0700): sockets live here
    deno_dir: Path
    import_map: Path
    prelude: str


class Host:
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
        self.pid: int | None = None
        self.workers = 0  # live Workers, as the host last reported
        self.stdout = OutputTail()
        self.stderr = OutputTail()
        self.died = asyncio.Event()
        self.death_reason: str | None = None
        self.retiring = False  # takes no new runs; killed once its runs are done
        self.nice = nice
        self._settings = settings
        self._paths = paths
        self._cgroups = cgroups
        self._on_death = on_death
        self._on_stuck = on_stuck
        self._runs: dict[str, RunCalls] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._proc: asyncio.subprocess.Process | None = None
        self._threads: WorkerThreads | None = None
        self._autogroup = "not started"
        self._group_nice = nice  # its autogroup's, as last set (autogroup.py)
        self._blocked = False  # host.ts said "blocked" and not "calm" since
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._write_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[Any]] = []
        self._kill_reason: str | None = None
        self._closing = False
        # Connected and answered init: a run may be written to it.
        self.started = False
        self._cgroup_key = f"{index}-{generation}"
        self._log = log.bind(host=index, generation=generation)

    def adopt(self, index: int, generation: int) -> None:
        """A spare host becomes position `index`'s."""
        self.index, self.generation = index, generation
        self._log = log.bind(host=index, generation=generation)

    @property
    def alive(self) -> bool:
        return self._proc is not None and not self.died.is_set() and self._kill_reason is None

    @property
    def usable(self) -> bool:
        """Takes new runs: alive and not retiring."""
        return self.alive and not self.retiring

    @property
    def in_flight(self) -> int:
        return len(self._runs)

    # --- life cycle

    async def start(self) -> None:
        """Spawn, connect, init. On any failure (or cancellation) the process is killed."""
        try:
            await self._start()
        except BaseException:
            if self._proc is not None and self._proc.returncode is None:
                self._proc.kill()
                await asyncio.shield(self._proc.wait())
            for task in self._tasks:
                task.cancel()
            raise

    async def _start(self) -> None:
        socket = self._paths.workdir / f"host-{self.index}-{self.generation}.sock"
        loop = asyncio.get_running_loop()
        connected: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
        connected = loop.create_future()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if connected.done():  # one connection per host, ever
                writer.close()
            else:
                connected.set_result((reader, writer))

        socket.unlink(missing_ok=True)
        server = await asyncio.start_unix_server(
            on_connect, path=str(socket), limit=self._settings.max_message_bytes + 1
        )
        timeout = self._settings.host_start_timeout_s
        try:
            socket.chmod(0o600)
            command = host_command(
                self._paths.deno,
                socket=socket,
                import_map_path=self._paths.import_map,
                heap_mb=self._settings.heap_mb,
                nice=self.nice,
            )
            self._proc = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=host_env(self._paths.deno_dir),
                cwd=self._paths.workdir,
                # A session of its own: our signals (Ctrl-C) are not the host's, and where
                # Linux has autogroups it is a scheduling group of its own, lowered below
                # ours (autogroup.py).
                start_new_session=True,
            )
            self.pid = self._proc.pid
            self._autogroup = autogroup.set_nice(self.pid, self.nice) or f"nice {self.nice}"
            self._threads = WorkerThreads(self.pid)
            if not self._cgroups.place(self._cgroup_key, self._proc.pid):
                self._tasks.append(asyncio.create_task(self._watch_memory()))
            self._tasks += [
                asyncio.create_task(self._drain(self._proc.stdout, self.stdout, "stdout")),
                asyncio.create_task(self._drain(self._proc.stderr, self.stderr, "stderr")),
            ]
            exited = asyncio.ensure_future(self._proc.wait())
            await asyncio.wait({connected, exited}, timeout=timeout, return_when="FIRST_COMPLETED")
            exited.cancel()
            if not connected.done():
                await self._abort_start("did not connect")
            self._reader, self._writer = connected.result()
        finally:
            server.close()  # nothing else may connect; the host's connection stays
            socket.unlink(missing_ok=True)
        await self._write(
            protocol.encode(
                protocol.init_message(self._settings, self._paths.prelude),
                max_bytes=16 * 1024 * 1024,
            )
        )
        try:
            line = await asyncio.wait_for(self._reader.readuntil(b"\n"), timeout)
            deno_version = protocol.parse_ready(protocol.decode(line))
        except (TimeoutError, asyncio.IncompleteReadError, protocol.ProtocolError) as exc:
            await self._abort_start(f"did not answer init ({type(exc).__name__})")
        self._tasks.append(asyncio.create_task(self._supervise()))
        self.started = True
        self._log.info("sandbox.host_started", pid=self.pid, deno=deno_version,
                       autogroup=self._autogroup)  # fmt: skip

    async def _abort_start(self, what: str) -> NoReturn:
        assert self._proc is not None
        if self._proc.returncode is None:
            self._proc.kill()
        await self._proc.wait()
        for task in self._tasks:
            task.cancel()
        tail = self.stderr.data[-500:].decode(errors="replace")
        raise HostStartFailed(f"host {self.index} {what}: exit {self._proc.returncode}, {tail!r}")

    async def close(self, *, kill: bool = False) -> None:
        """End the host: EOF on its socket makes it exit; killed if it does not (or at once)."""
        self._closing = True
        if self._writer is not None:
            with contextlib.suppress(OSError):
                self._writer.close()
        if self._proc is not None and self._proc.returncode is None:
            if kill:
                self._proc.kill()
            try:
                await asyncio.wait_for(self._proc.wait(), EXIT_WAIT_S)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._cgroups.release(self._cgroup_key)

    async def wait_idle(self, timeout_s: float) -> bool:
        """True once no run is under way here; False if runs still are after `timeout_s`."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def drain_and_close(self) -> None:
        """Retire: no new runs; once those under way are done, kill the process."""
        self.retiring = True
        await self._idle.wait()
        await self.close(kill=True)

    def kill(self, reason: str) -> None:
        """SIGKILL this host (our own child, by pid); its runs fail with `reason`."""
        if self._kill_reason is None:
            self._kill_reason = reason
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()

    def _rank(self) -> None:
        """Set this host's autogroup nice: see autogroup.group_nice."""
        nice = autogroup.group_nice(
            self.nice, blocked=self._blocked, runs=len(self._runs), was=self._group_nice
        )
        if nice != self._group_nice and self.pid is not None and self.alive:
            self._group_nice = nice
            autogroup.set_nice(self.pid, nice)

    async def _watch_memory(self) -> None:
        """No cgroup holds this host: bound its memory from here (see memory_watch)."""
        assert self._proc is not None
        limit_mb = self._settings.memory_max_mb

        def over(resident: int) -> None:
            self._log.warning("sandbox.host_over_memory", pid=self.pid,
                              resident_mb=resident >> 20, limit_mb=limit_mb)  # fmt: skip
            self.kill(f"out of memory: over the memory limit of {limit_mb} MB")

        await memory_watch.watch(
            self._proc.pid, limit_bytes=limit_mb << 20, alive=lambda: self.alive, on_over=over
        )

    async def _drain(self, pipe: asyncio.StreamReader | None, tail: OutputTail, name: str) -> None:
        if pipe is None:
            return
        while chunk := await pipe.read(65536):
            if name == "stdout" and tail.total == 0:
                # The host never writes stdout: this is a sandbox layer that failed.
                self._log.warning("sandbox.host_stdout_written")
            tail.add(chunk)

    async def _supervise(self) -> None:
        """Wait for the socket to close or the process to exit; then fail what it carried."""
        assert self._proc is not None
        reading = asyncio.create_task(self._read_loop())
        exiting = asyncio.create_task(self._proc.wait())
        await asyncio.wait({reading, exiting}, return_when="FIRST_COMPLETED")
        if not exiting.done():
            try:
                await asyncio.wait_for(asyncio.shield(exiting), EXIT_WAIT_S)
            except TimeoutError:
                self._proc.kill()
                await exiting
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        if self._writer is not None:
            self._writer.close()
        reason = self._death_reason()
        self._cgroups.release(self._cgroup_key)
        self.death_reason = reason
        self.died.set()
        carried = list(self._runs.values())
        for run in carried:
            if not run.done.done():
                run.done.set_exception(HostCrashed(reason))
        if not self._closing:
            self._log.warning(
                "sandbox.host_died",
                pid=self.pid,
                returncode=self._proc.returncode,
                reason=reason,
                runs=len(carried),
            )
            self._on_death(self)

    def _death_reason(self) -> str:
        assert self._proc is not None
        return self._kill_reason or death_reason(
            self._proc.returncode,
            stderr=self.stderr.data,
            oom_kills=self._cgroups.oom_kills(self._cgroup_key),
            heap_mb=self._settings.heap_mb,
            memory_max_mb=self._settings.memory_max_mb,
        )

    # --- the socket

    async def _write(self, data: bytes) -> None:
        assert self._writer is not None
        async with self._write_lock:
            self._writer.write(data)
            await self._writer.drain()

    async def _read_loop(self) -> None:
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
                if message["t"] == "call":
                    self._on_call(protocol.parse_call(message))
                elif message["t"] == "done":
                    self._on_done(protocol.parse_done(message, self._settings))
                elif message["t"] == "cpu" and self._threads is not None:
                    threads = protocol.parse_cpu_question(
                        message, max_threads=self._settings.max_workers_per_host
                    )
                    answer = protocol.cpu_message(self._threads.cpu_ns(threads))
                    limit = self._settings.max_message_bytes
                    await self._write(protocol.encode(answer, max_bytes=limit))
                elif message["t"] in ("blocked", "calm"):
                    self._blocked = message["t"] == "blocked"
                    self._rank()
                elif message["t"] == "demote" and self._threads is not None:
                    demoted = self._threads.demote(message.get("thread"))
                    self._log.info("sandbox.worker_demoted", thread=message.get("thread"),
                                   demoted=demoted)  # fmt: skip
                elif message["t"] == "stuck":
                    workflow = message.get("workflow")
                    self._log.warning("sandbox.worker_stuck", cpu_ms=message.get("cpu_ms"),
                                      blocked_ms=message.get("blocked_ms"))  # fmt: skip
                    self._on_stuck(self, workflow if isinstance(workflow, str) else None)
        except protocol.ProtocolError as exc:
            self._log.error("sandbox.host_protocol_error", error=str(exc))
            self.kill(f"the sandbox broke its protocol ({exc})")
        except OSError as exc:
            self._log.warning("sandbox.host_socket_error", error=repr(exc))

    def _on_done(self, done: protocol.Done) -> None:
        self.workers = done.workers
        run = self._runs.get(done.run_id)
        if run is not None and not run.done.done():
            run.done.set_result(done)

    def _on_call(self, call: protocol.Call) -> None:
        run = self._runs.get(call.run_id)
        if run is not None:  # else the run ended meanwhile
            run.spawn(self._answer(run, call))

    # --- runs

    async def run(self, request: RunRequest, bindings: Bindings) -> RunOutcome:
        started_at = datetime.now(UTC)
        t0 = time.perf_counter()

        def outcome(status: str, **fields: Any) -> RunOutcome:
            elapsed = int((time.perf_counter() - t0) * 1000)
            values = {"result": None, "error": None, "logs": [], "cold": False} | fields
            return RunOutcome(status=status, started_at=started_at, duration_ms=elapsed, **values)

        def failed(message: str, *, crashed: bool = False) -> RunOutcome:
            return outcome("error", error={"message": message, "stack": None}, crashed=crashed)

        if request.run_id in self._runs:
            return failed("this run is already running")
        if not self.alive:
            raise HostCrashed(self.death_reason or "the sandbox host is not running")
        settings = self._settings
        try:
            data = protocol.encode(
                protocol.run_message(
                    run_id=request.run_id,
                    workflow_id=request.workflow_id,
                    version=request.version,
                    language=request.language,
                    code=request.code,
                    event=request.event,
                    timeout_ms=int(settings.wall_timeout_s * 1000),
                ),
                max_bytes=settings.max_message_bytes,
            )
        except protocol.MessageTooLarge as exc:
            return failed(f"the workflow's code and event are too large for the sandbox: {exc}")
        except (TypeError, ValueError):
            return failed("the event is not JSON")
        run = RunCalls(request.run_id, bindings, settings, self._log)
        self._runs[request.run_id] = run
        self._idle.clear()
        self._rank()
        try:
            await self._write(data)
            try:
                done = await asyncio.wait_for(
                    asyncio.shield(run.done), settings.wall_timeout_s + ANSWER_GRACE_S
                )
            except TimeoutError:
                waited = settings.wall_timeout_s + ANSWER_GRACE_S
                self.kill(f"it stopped answering for {waited} s and was killed")
                done = await run.done
        except HostCrashed as exc:
            return failed(f"the sandbox crashed ({exc.reason}); the run was stopped", crashed=True)
        except OSError:
            await self.died.wait()
            reason = self.death_reason
            return failed(f"the sandbox crashed ({reason}); the run was stopped", crashed=True)
        finally:
            self._runs.pop(request.run_id, None)
            if not self._runs:
                self._idle.set()
            self._rank()
            run.end()
        return outcome(
            done.status,
            result=done.result,
            error=done.error,
            logs=done.logs,
            cold=done.cold,
        )

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
            self._log.error("sandbox.binding_not_json", method=call.method)
            error = f"{call.method}() failed (internal error)"
            data = protocol.encode(
                protocol.reply_error(call.run_id, call.call_id, error), max_bytes=limit
            )
        with contextlib.suppress(OSError, AssertionError):
            await self._write(data)
