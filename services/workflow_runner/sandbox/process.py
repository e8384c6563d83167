"""One Deno host process: spawned, watched until it exits, killed by pid; why it died.

The process runs in a session of its own (our signals are not its; where Linux has autogroups
it is a scheduling group of its own, ranked below ours: autogroup.py), in a cgroup of its own
where the kernel allows it, else under the memory watch (memory_watch.py). Its stdout and
stderr are kept as tails for the diagnosis of its death, never parsed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.workflow_runner.sandbox import autogroup, memory_watch
from services.workflow_runner.sandbox.cgroup import Cgroups
from services.workflow_runner.sandbox.diagnosis import OutputTail, death_reason
from services.workflow_runner.sandbox.launch import host_command, host_env
from services.workflow_runner.sandbox.models import SandboxSettings
from services.workflow_runner.sandbox.worker_threads import WorkerThreads

EXIT_WAIT_S = 2.0


class HostStartFailed(Exception):
    """A host did not start or did not connect in time."""


@dataclass(frozen=True)
class HostPaths:
    exec_path: Path  # the tools a host is started with, and nothing else (launch.py)
    workdir: Path  # private (0700): sockets live here
    deno_dir: Path
    import_map: Path
    prelude: str


class HostProcess:
    """The OS side of a host. `kill` is SIGKILL to our own child, by pid; the first reason
    given is the one its death is told by."""

    def __init__(
        self,
        cgroup_key: str,
        *,
        settings: SandboxSettings,
        paths: HostPaths,
        cgroups: Cgroups,
        nice: int,
        log: Any,
    ) -> None:
        self.nice = nice
        self.log = log
        self.pid: int | None = None
        self.stdout = OutputTail()
        self.stderr = OutputTail()
        self.threads: WorkerThreads | None = None
        self.kill_reason: str | None = None
        self._settings = settings
        self._paths = paths
        self._cgroups = cgroups
        self._cgroup_key = cgroup_key
        self._proc: asyncio.subprocess.Process | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._group_nice = nice  # its autogroup's, as last set (autogroup.py)
        self.autogroup = "not started"

    @property
    def spawned(self) -> bool:
        return self._proc is not None

    @property
    def running(self) -> bool:
        """Spawned, not exited, not being killed."""
        return self._proc is not None and self._proc.returncode is None and not self.kill_reason

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.returncode

    async def spawn(self, socket: Path) -> None:
        """Start the host, told to connect to `socket`; placed in its cgroup (or watched)."""
        command = host_command(
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
            env=host_env(self._paths.deno_dir, self._paths.exec_path),
            cwd=self._paths.workdir,
            # A session of its own: our signals (Ctrl-C) are not the host's, and where
            # Linux has autogroups it is a scheduling group of its own, lowered below
            # ours (autogroup.py).
            start_new_session=True,
        )
        self.pid = self._proc.pid
        self.autogroup = autogroup.set_nice(self.pid, self.nice) or f"nice {self.nice}"
        self.threads = WorkerThreads(self.pid)
        if not self._cgroups.place(self._cgroup_key, self._proc.pid):
            self._tasks.append(asyncio.create_task(self._watch_memory()))
        self._tasks += [
            asyncio.create_task(self._drain(self._proc.stdout, self.stdout, "stdout")),
            asyncio.create_task(self._drain(self._proc.stderr, self.stderr, "stderr")),
        ]

    async def wait(self) -> int:
        assert self._proc is not None
        return await self._proc.wait()

    def kill(self, reason: str | None = None) -> None:
        """SIGKILL the process; `reason` (the first given) becomes the reason of its death."""
        if reason is not None and self.kill_reason is None:
            self.kill_reason = reason
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()

    async def abandon(self) -> None:
        """Kill a host that did not start, and end its watches at once."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await asyncio.shield(self._proc.wait())
        for task in self._tasks:
            task.cancel()

    async def start_failed(self, what: str) -> HostStartFailed:
        """Abandon a host that did not start; the failure to raise, with its stderr's tail."""
        await self.abandon()
        tail = self.stderr.data[-500:].decode(errors="replace")
        return HostStartFailed(f"{what}: exit {self.returncode}, {tail!r}")

    async def stop(self, *, kill: bool = False) -> None:
        """Wait for the exit (killed at once, or after EXIT_WAIT_S); then for its watches."""
        if self._proc is not None and self._proc.returncode is None:
            if kill:
                self._proc.kill()
            try:
                await asyncio.wait_for(self._proc.wait(), EXIT_WAIT_S)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.release()

    def release(self) -> None:
        """Give its cgroup back (once it has exited)."""
        self._cgroups.release(self._cgroup_key)

    def death_reason(self) -> str:
        return self.kill_reason or death_reason(
            self.returncode,
            stderr=self.stderr.data,
            oom_kills=self._cgroups.oom_kills(self._cgroup_key),
            heap_mb=self._settings.heap_mb,
            memory_max_mb=self._settings.memory_max_mb,
        )

    def rank(self, *, blocked: bool, runs: int) -> None:
        """Set this host's autogroup nice: see autogroup.group_nice."""
        nice = autogroup.group_nice(self.nice, blocked=blocked, runs=runs, was=self._group_nice)
        if nice != self._group_nice and self.pid is not None and self.running:
            self._group_nice = nice
            autogroup.set_nice(self.pid, nice)

    async def _watch_memory(self) -> None:
        """No cgroup holds this host: bound its memory from here (see memory_watch)."""
        assert self.pid is not None
        limit_mb = self._settings.memory_max_mb

        def over(resident: int) -> None:
            self.log.warning("sandbox.host_over_memory", pid=self.pid,
                             resident_mb=resident >> 20, limit_mb=limit_mb)  # fmt: skip
            self.kill(f"out of memory: over the memory limit of {limit_mb} MB")

        await memory_watch.watch(
            self.pid, limit_bytes=limit_mb << 20, alive=lambda: self.running, on_over=over
        )

    async def _drain(self, pipe: asyncio.StreamReader | None, tail: OutputTail, name: str) -> None:
        if pipe is None:
            return
        while chunk := await pipe.read(65536):
            if name == "stdout" and tail.total == 0:
                # The host never writes stdout: this is a sandbox layer that failed.
                self.log.warning("sandbox.host_stdout_written")
            tail.add(chunk)
