"""The sandbox the runner calls: Deno host processes placed per organization, each run sent
to its organization's host.

An organization's runs go to a host position of its own, never shared with another
organization (placement.py): at most `max_hosts` positions, assigned on demand; an idle one is
evicted, least recently used first, when a new organization needs one; when all carry runs, the
new organization waits (bounded). Its workflows' Workers stay warm there; a position carries at
most `max_runs_per_host` runs at once (the rest wait their turn). A host that dies is replaced
at once in the background, and on demand by the next run. A host where a run timed out is
retired: a new host takes the new runs, the old one finishes what it carries and is killed,
with whatever thread `terminate()` could not stop (see host.py). A host where a Worker went
past the CPU limit (its thread spins on) is retired the same way but killed once its runs are
done or after STUCK_GRACE_S, whichever is first, so the spinning thread burns little. A run
whose host died under it runs once more, on a host of its own (the culprit, unknown, ends
nothing but itself the second time: a run killed with a spinning host may be a bomb of its
own). A workflow that went past a time limit or crashed its host alone is quarantined for a
while: its runs go to its organization's quarantine position (see `_quarantine`). A spare host,
assigned to no one, is kept started: the position whose host is new or replaced takes it, so
its next runs wait for no process to start.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import structlog

from services.workflow_runner.sandbox.cgroup import Cgroups
from services.workflow_runner.sandbox.host import Host, HostCrashed, HostPaths, HostStartFailed
from services.workflow_runner.sandbox.launch import (
    HOST_NICE,
    OFFENDER_NICE,
    WORKER_PRELUDE,
    write_import_map,
)
from services.workflow_runner.sandbox.models import (
    Bindings,
    Language,
    RunOutcome,
    RunRequest,
    SandboxSettings,
)
from services.workflow_runner.sandbox.placement import Placement, PoolBusy
from shared.code_check import compile_check, packaged_deno

log = structlog.get_logger(__name__)

MAX_RESPAWN_DELAY_S = 5.0
SINGLE_RUN_HOSTS = 4
SPARE = -2  # the index of the spare host until a position takes it
# Deno processes beyond `max_hosts` in a sandbox at rest: the spare.
EXTRA_HOSTS = 1
# How long a workflow that ran past a time limit, or crashed its host, runs in quarantine.
QUARANTINE_S = 600.0
# How long a host where a Worker went past the CPU limit may finish its other runs.
STUCK_GRACE_S = 0.25


class SandboxUnavailable(Exception):
    """No host could be started: a retryable infrastructure failure, not the workflow's."""


class _Slot:
    """One host position, of one organization (and lane): its current Host, its run
    capacity, its respawns. Evicted: its host is killed, and it never starts another."""

    def __init__(
        self, index: int, organization_id: str, sandbox: Sandbox, *, quarantine: bool
    ) -> None:
        self.index = index
        self.organization_id = organization_id
        self.quarantine = quarantine
        self.evicted = False
        self.capacity = asyncio.Semaphore(sandbox.settings.max_runs_per_host)
        self.host: Host | None = None
        self._sandbox = sandbox
        self._lock = asyncio.Lock()
        self._generation = 0
        self._failures = 0

    async def ensure(self) -> Host:
        """The live host, started (again) if needed."""
        host = self.host
        if host is not None and host.usable:
            return host
        async with self._lock:
            if self.host is not None and self.host.usable:
                return self.host
            if self._sandbox.closed or self.evicted:
                raise SandboxUnavailable("the sandbox is closed")
            if self._failures:
                await asyncio.sleep(min(0.1 * 2**self._failures, MAX_RESPAWN_DELAY_S))
            self._generation += 1
            # A quarantine's host runs at the lowest priority (launch.OFFENDER_NICE): it starts
            # its own, the spare runs at the others' priority.
            sandbox, nice = self._sandbox, OFFENDER_NICE if self.quarantine else HOST_NICE
            host = None if self.quarantine else sandbox._take_spare(self.index, self._generation)
            if host is None:
                host = sandbox._new_host(self.index, self._generation, nice=nice)
                try:
                    await host.start()
                except (HostStartFailed, OSError) as exc:
                    self._failures += 1
                    log.error("sandbox.host_start_failed", host=self.index, error=str(exc))
                    raise SandboxUnavailable(str(exc)) from exc
            self._failures = 0
            if self.evicted:  # while it started (a respawn): it belongs to no one now
                self._sandbox._close_soon(host)
                raise SandboxUnavailable("the host position was evicted")
            self.host = host
            log.info("sandbox.host_placed", host=self.index, pid=host.pid, nice=host.nice,
                     organization_id=self.organization_id)  # fmt: skip
            return host


class Sandbox:
    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self.closed = False
        self._started = False
        # Host positions by (organization, quarantined), at most max_hosts (placement.py).
        self._placement: Placement[_Slot] = Placement(
            settings.max_hosts, make=self._new_slot, evict=self._evict, wait_s=settings.host_wait_s
        )
        self._by_index: dict[int, _Slot] = {}
        self._indexes = 0
        self._paths: HostPaths | None = None
        self._workdir: Path | None = None
        self._cgroups: Cgroups | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._retiring: set[Host] = set()  # retired and single-run hosts: killed on close
        # Second tries of runs whose host died, each on a host of its own, a few at a time.
        self._single_hosts = asyncio.Semaphore(SINGLE_RUN_HOSTS)
        self._singles = 0
        # A host started ahead, taken by the next position whose host is replaced: a retired
        # host's runs then wait for no process to start (only for their Workers).
        self._spare: Host | None = None
        self._spares = 0
        # Workflows that went past a time limit or crashed a host (id -> until, monotonic):
        # their runs go to their organization's quarantine position, none of its other
        # workflows'.
        self._quarantined: dict[str, float] = {}

    async def start(self) -> None:
        """Start the spare host (the first organization's); raises SandboxUnavailable when it
        cannot start. Hosts are placed per organization as runs arrive (see `run`)."""
        s = self.settings
        parent = Path(s.socket_dir) if s.socket_dir else None
        if parent is not None:
            parent.mkdir(parents=True, exist_ok=True)
        # mkdtemp: a fresh directory only we can enter (0700), for sockets and Deno's cache.
        self._workdir = Path(tempfile.mkdtemp(prefix="rh-sandbox-", dir=parent))
        deno_dir = self._workdir / "deno"
        deno_dir.mkdir()
        self._paths = HostPaths(
            deno=s.deno_bin or packaged_deno(),
            workdir=self._workdir,
            deno_dir=deno_dir,
            import_map=write_import_map(self._workdir),
            prelude=WORKER_PRELUDE.read_text(),
        )
        self._cgroups = Cgroups(
            memory_max_mb=s.memory_max_mb,
            pids_max=s.pids_max,
            parent=Path(s.cgroup_parent) if s.cgroup_parent else None,
        )
        self._cgroups.prepare()
        self._started = True
        spare = self._start_spare()
        assert spare is not None
        try:
            await spare
        except BaseException:
            await self.close()
            raise
        if self._spare is None:
            await self.close()
            raise SandboxUnavailable("the first Deno host did not start (see the log)")
        log.info("sandbox.started", max_hosts=s.max_hosts, cgroups=self._cgroups.available)

    async def close(self) -> None:
        """Kill every host (retiring ones too) and remove the private directory."""
        self.closed = True
        hosts = set(self._slot_hosts()) | self._retiring
        if self._spare is not None:
            hosts.add(self._spare)
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        hosts |= set(self._slot_hosts()) | self._retiring
        await asyncio.gather(*(host.close(kill=True) for host in hosts), return_exceptions=True)
        if self._cgroups is not None:
            self._cgroups.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)

    async def run(self, request: RunRequest, bindings: Bindings) -> RunOutcome:
        """Run one workflow version on one event. Every workflow failure (exception, timeout,
        crash, caps) is an outcome; raises SandboxUnavailable only when no host can start.

        The run goes to its organization's host (its quarantine's if the workflow is
        quarantined), never one that carries another organization's runs: it may wait for
        one, at most host_wait_s (then SandboxUnavailable).

        A run whose host died under it is run once more (at-least-once, as after a runner
        crash): its bindings may see the calls and fetches of both tries."""
        if self.closed or not self._started:
            raise SandboxUnavailable("the sandbox is not running")
        key = (request.organization_id, self.quarantined(request.workflow_id))
        try:
            slot = await self._placement.acquire(key)
        except PoolBusy as exc:
            log.warning("sandbox.hosts_busy", organization_id=request.organization_id,
                        waited_s=self.settings.host_wait_s)  # fmt: skip
            raise SandboxUnavailable(str(exc)) from exc
        try:
            outcome = await self._run_on(slot, request, bindings)
        finally:
            self._placement.release(key)
        if outcome.crashed:
            # Every run a dead host carried fails with it, and which one killed it is unknown.
            # Each runs once more, on a host of its own: a bystander succeeds there, and the
            # culprit ends nothing but itself, recorded as the crash it causes again.
            log.info("sandbox.run_again", run_id=request.run_id, error=outcome.error)
            outcome = await self._alone(request, bindings)
        if outcome.status == "timeout" or outcome.crashed:
            self._quarantine(request.workflow_id)
        return outcome

    def quarantined(self, workflow_id: str) -> bool:
        """Whether the workflow's runs go to its organization's quarantine host."""
        until = self._quarantined.get(workflow_id)
        if until is not None and until < time.monotonic():
            del self._quarantined[workflow_id]
            return False
        return until is not None

    def _quarantine(self, workflow_id: str) -> None:
        """A workflow that went past a time limit or crashed its host (again, alone) runs on
        its organization's quarantine host for QUARANTINE_S: where it strikes again, it hits
        only the others there. Its first strike fell on its organization's host."""
        if workflow_id not in self._quarantined:
            log.info("sandbox.quarantined", workflow_id=workflow_id, seconds=QUARANTINE_S)
        self._quarantined[workflow_id] = time.monotonic() + QUARANTINE_S

    async def _alone(self, request: RunRequest, bindings: Bindings) -> RunOutcome:
        """One run on a fresh host that nothing else uses, killed after the run; at the
        lowest priority: it is a run of the account whose host just crashed."""
        assert self._paths is not None and self._cgroups is not None
        async with self._single_hosts:
            self._singles += 1
            host = Host(-1, self._singles, settings=self.settings, paths=self._paths,
                        cgroups=self._cgroups, nice=OFFENDER_NICE)  # fmt: skip
            self._retiring.add(host)  # close() kills it too
            try:
                await host.start()
                return await host.run(request, bindings)
            except (HostStartFailed, HostCrashed, OSError) as exc:
                raise SandboxUnavailable(f"a single-run host failed: {exc}") from exc
            finally:
                await host.close(kill=True)
                self._retiring.discard(host)

    async def _run_on(self, slot: _Slot, request: RunRequest, bindings: Bindings) -> RunOutcome:
        async with slot.capacity:
            host = await slot.ensure()
            try:
                outcome = await host.run(request, bindings)
            except HostCrashed:  # died between ensure() and sending the run: once more
                host = await slot.ensure()
                outcome = await host.run(request, bindings)
        if outcome.status == "timeout":
            # Whether the Worker was spinning or only waiting, its thread may not have stopped.
            self._retire(host)
        return outcome

    async def compile_check(self, code: str, language: Language) -> None:
        """Raise CodeError for a syntax error or no default-exported function. Never runs the
        code; also usable without a started sandbox (see shared.code_check)."""
        deno = self._paths.deno if self._paths else self.settings.deno_bin
        await compile_check(code, language, deno_bin=deno)

    @property
    def directory(self) -> Path | None:
        """The private directory of this sandbox (its hosts' command lines name its sockets)."""
        return self._workdir

    @property
    def spare(self) -> Host | None:
        """The host started ahead for the next position whose host is replaced."""
        return self._spare

    def hosts(self) -> list[Host | None]:
        """The current host of each organization placed, quarantines aside (for health
        checks and tests)."""
        return [slot.host for (_, quarantine), slot in self._placement.items() if not quarantine]

    @property
    def waiting_for_host(self) -> int:
        """Runs waiting for a host: every one of max_hosts carries another account's runs."""
        return self._placement.waiting

    def host_for(self, organization_id: str, *, quarantine: bool = False) -> Host | None:
        """The current host of an organization (or of its quarantine), if it has one."""
        slot = self._placement.get((organization_id, quarantine))
        return slot.host if slot is not None else None

    async def ready_host(self, organization_id: str) -> Host:
        """The organization's usable host, placed and started if needed (for tests)."""
        key = (organization_id, False)
        slot = await self._placement.acquire(key)
        try:
            return await slot.ensure()
        finally:
            self._placement.release(key)

    def _slot_hosts(self) -> list[Host]:
        return [slot.host for _, slot in self._placement.items() if slot.host is not None]

    def _new_slot(self, key: tuple[str, bool]) -> _Slot:
        self._indexes += 1
        slot = _Slot(self._indexes, key[0], self, quarantine=key[1])
        self._by_index[self._indexes] = slot
        return slot

    def _evict(self, key: tuple[str, bool], slot: _Slot) -> None:
        """The pool is full and another organization needs a host: this idle one's goes."""
        slot.evicted = True
        del self._by_index[slot.index]
        host, slot.host = slot.host, None
        log.info("sandbox.host_evicted", host=slot.index, pid=host.pid if host else None,
                 organization_id=key[0], quarantine=key[1])  # fmt: skip
        if host is not None:
            self._close_soon(host)

    def _close_soon(self, host: Host) -> None:
        """Kill a host that carries no run (close() kills it too if it comes first)."""
        self._retiring.add(host)

        async def close() -> None:
            try:
                await host.close(kill=True)
            finally:
                self._retiring.discard(host)

        self._in_background(close())

    def _new_host(self, index: int, generation: int, *, nice: int = HOST_NICE) -> Host:
        assert self._paths is not None and self._cgroups is not None
        return Host(
            index,
            generation,
            settings=self.settings,
            paths=self._paths,
            cgroups=self._cgroups,
            nice=nice,
            on_death=self._died,
            on_stuck=self._stuck,
        )

    def _retire(self, host: Host) -> None:
        """Send new runs to a new host; kill this one once its runs are done."""
        if host.retiring or self.closed:
            return
        log.info("sandbox.host_retiring", host=host.index, pid=host.pid, runs=host.in_flight)
        host.retiring = True
        self._retiring.add(host)

        async def drain() -> None:
            try:
                await host.drain_and_close()
            finally:
                self._retiring.discard(host)

        self._in_background(drain())
        self._respawn_soon(host)

    def _start_spare(self) -> asyncio.Task[None] | None:
        if self.closed or self._spare is not None:
            return None
        self._spares += 1
        host = self._new_host(SPARE, self._spares)
        self._spare = host

        async def start() -> None:
            try:
                await host.start()
            except (HostStartFailed, OSError) as exc:
                log.warning("sandbox.spare_start_failed", error=str(exc))
                if self._spare is host:
                    self._spare = None

        return self._in_background(start())

    def _take_spare(self, index: int, generation: int) -> Host | None:
        """The spare host, now position `index`'s (another spare is started), or None: also
        while the spare is still starting (nothing may be written to it yet)."""
        spare = self._spare
        if spare is None or not spare.usable or not spare.started:
            return None
        self._spare = None
        spare.adopt(index, generation)
        log.info("sandbox.spare_taken", host=index, pid=spare.pid)
        self._start_spare()
        return spare

    def _died(self, host: Host) -> None:
        if host.index == SPARE:  # not carrying runs yet: another is started when one is taken
            if self._spare is host:
                self._spare = None
            return
        self._respawn_soon(host)

    def _stuck(self, host: Host, workflow_id: str | None) -> None:
        """A Worker of this host went past the CPU limit (in a run, or in a timer it left
        behind): its thread may spin on until the process ends. Quarantine its workflow; retire
        the host, and kill it once its runs are done or after STUCK_GRACE_S, whichever is
        first; runs still on it then run once more (see `run`)."""
        if workflow_id is not None:
            self._quarantine(workflow_id)
        self._retire(host)
        grace_s = min(self.settings.cpu_limit_ms / 1000, STUCK_GRACE_S)

        async def deadline() -> None:
            if not await host.wait_idle(grace_s):
                host.kill(f"a Worker spun on past the CPU limit; killed after {grace_s} s more")

        if not self.closed:
            self._in_background(deadline())

    def _respawn_soon(self, host: Host) -> None:
        slot = self._by_index.get(host.index)  # None: evicted meanwhile
        if self.closed or slot is None:
            return
        if slot.host is not None and slot.host is not host and slot.host.usable:
            return

        async def respawn() -> None:
            with contextlib.suppress(SandboxUnavailable):
                await slot.ensure()

        self._in_background(respawn())

    def _in_background(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task
