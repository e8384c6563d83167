"""The lives of a sandbox's hosts: started, replaced, retired, killed.

A host position (`HostSlot`) keeps a live host: one that dies is replaced at once in the
background, and on demand by the next run, with a back-off after failed starts. A host where a
run timed out is retired: a new host takes the new runs, the old one finishes what it carries
and is killed, with whatever thread `terminate()` could not stop (see host.py). A host where a
Worker went past the CPU limit (its thread spins on) is retired the same way but killed once
its runs are done or after STUCK_GRACE_S, whichever is first, so the spinning thread burns
little. A spare host, assigned to no one, is kept started: the position whose host is new or
replaced takes it, so its next runs wait for no process to start. A run whose host died under
it runs again on a single-run host of its own, at the lowest priority.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from services.workflow_runner.sandbox.cgroup import Cgroups
from services.workflow_runner.sandbox.host import Host, HostCrashed, HostPaths, HostStartFailed
from services.workflow_runner.sandbox.launch import HOST_NICE, OFFENDER_NICE
from services.workflow_runner.sandbox.models import (
    Bindings,
    RunOutcome,
    RunRequest,
    SandboxSettings,
)

log = structlog.get_logger(__name__)

MAX_RESPAWN_DELAY_S = 5.0
SINGLE_RUN_HOSTS = 4
SPARE = -2  # the index of the spare host until a position takes it
# Deno processes beyond `max_hosts` in a sandbox at rest: the spare.
EXTRA_HOSTS = 1
# How long a host where a Worker went past the CPU limit may finish its other runs.
STUCK_GRACE_S = 0.25


class SandboxUnavailable(Exception):
    """No host could be started: a retryable infrastructure failure, not the workflow's."""


class HostSlot:
    """One host position, of one organization (and lane): its current Host, its run
    capacity, its respawns. Evicted: its host is killed, and it never starts another."""

    def __init__(self, index: int, organization_id: str, hosts: Hosts, *, quarantine: bool):
        self.index = index
        self.organization_id = organization_id
        self.quarantine = quarantine
        self.evicted = False
        self.capacity = asyncio.Semaphore(hosts.settings.max_runs_per_host)
        self.host: Host | None = None
        self._hosts = hosts
        self._lock = asyncio.Lock()
        self._generation = 0
        self._failures = 0

    async def run(self, request: RunRequest, bindings: Bindings) -> RunOutcome:
        """Run on this position's host (started if needed), one of `max_runs_per_host`."""
        async with self.capacity:
            host = await self.ensure()
            try:
                outcome = await host.run(request, bindings)
            except HostCrashed:  # died between ensure() and sending the run: once more
                host = await self.ensure()
                outcome = await host.run(request, bindings)
        if outcome.status == "timeout":
            # Whether the Worker was spinning or only waiting, its thread may not have stopped.
            self._hosts.retire(host)
        return outcome

    async def ensure(self) -> Host:
        """The live host, started (again) if needed."""
        host = self.host
        if host is not None and host.usable:
            return host
        async with self._lock:
            if self.host is not None and self.host.usable:
                return self.host
            if self._hosts.closed or self.evicted:
                raise SandboxUnavailable("the sandbox is closed")
            if self._failures:
                await asyncio.sleep(min(0.1 * 2**self._failures, MAX_RESPAWN_DELAY_S))
            self._generation += 1
            host = await self._start()
            if self.evicted:  # while it started (a respawn): it belongs to no one now
                self._hosts.close_soon(host)
                raise SandboxUnavailable("the host position was evicted")
            self.host = host
            log.info("sandbox.host_placed", host=self.index, pid=host.pid, nice=host.nice,
                     organization_id=self.organization_id)  # fmt: skip
            return host

    async def _start(self) -> Host:
        """The spare, or a host started now. A quarantine's host runs at the lowest priority
        (launch.OFFENDER_NICE): it starts its own, the spare runs at the others' priority."""
        hosts = self._hosts
        host = None if self.quarantine else hosts.take_spare(self.index, self._generation)
        if host is None:
            nice = OFFENDER_NICE if self.quarantine else HOST_NICE
            host = hosts.new_host(self.index, self._generation, nice=nice)
            try:
                await host.start()
            except (HostStartFailed, OSError) as exc:
                self._failures += 1
                log.error("sandbox.host_start_failed", host=self.index, error=str(exc))
                raise SandboxUnavailable(str(exc)) from exc
        self._failures = 0
        return host


class Hosts:
    """Every host of one sandbox: the positions' (by index), the spare, the retiring and
    single-run ones; `close` kills them all. `on_stuck_workflow` hears of a workflow whose
    Worker went past the CPU limit."""

    def __init__(
        self,
        settings: SandboxSettings,
        *,
        paths: HostPaths,
        cgroups: Cgroups,
        on_stuck_workflow: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self.closed = False
        self._paths = paths
        self._cgroups = cgroups
        self._on_stuck_workflow = on_stuck_workflow
        self._slots: dict[int, HostSlot] = {}
        self._indexes = 0
        self._background: set[asyncio.Task[None]] = set()
        self._retiring: set[Host] = set()  # retired and single-run hosts: killed on close
        # Second tries of runs whose host died, each on a host of its own, a few at a time.
        self._single_hosts = asyncio.Semaphore(SINGLE_RUN_HOSTS)
        self._singles = 0
        # A host started ahead, taken by the next position whose host is replaced: a retired
        # host's runs then wait for no process to start (only for their Workers).
        self.spare: Host | None = None
        self._spares = 0

    def new_slot(self, organization_id: str, *, quarantine: bool) -> HostSlot:
        self._indexes += 1
        slot = HostSlot(self._indexes, organization_id, self, quarantine=quarantine)
        self._slots[slot.index] = slot
        return slot

    def evict(self, slot: HostSlot) -> None:
        """The position goes (its organization's host is needed elsewhere): its host too."""
        slot.evicted = True
        del self._slots[slot.index]
        host, slot.host = slot.host, None
        log.info("sandbox.host_evicted", host=slot.index, pid=host.pid if host else None,
                 organization_id=slot.organization_id, quarantine=slot.quarantine)  # fmt: skip
        if host is not None:
            self.close_soon(host)

    async def start(self) -> None:
        """Start the spare; raises SandboxUnavailable when it does not start."""
        spare = self._start_spare()
        assert spare is not None
        await spare
        if self.spare is None:
            raise SandboxUnavailable("the first Deno host did not start (see the log)")

    async def close(self) -> None:
        """Kill every host (retiring ones too)."""
        self.closed = True
        hosts = self._all()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        hosts |= self._all()
        await asyncio.gather(*(host.close(kill=True) for host in hosts), return_exceptions=True)

    def _all(self) -> set[Host]:
        hosts = {slot.host for slot in self._slots.values() if slot.host is not None}
        hosts |= self._retiring
        if self.spare is not None:
            hosts.add(self.spare)
        return hosts

    async def run_alone(self, request: RunRequest, bindings: Bindings) -> RunOutcome:
        """One run on a fresh host that nothing else uses, killed after the run; at the
        lowest priority: it is a run of the account whose host just crashed."""
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

    def new_host(self, index: int, generation: int, *, nice: int = HOST_NICE) -> Host:
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

    def close_soon(self, host: Host) -> None:
        """Kill a host that carries no run (close() kills it too if it comes first)."""
        self._retiring.add(host)

        async def close() -> None:
            try:
                await host.close(kill=True)
            finally:
                self._retiring.discard(host)

        self._in_background(close())

    def retire(self, host: Host) -> None:
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

    def take_spare(self, index: int, generation: int) -> Host | None:
        """The spare host, now position `index`'s (another spare is started), or None: also
        while the spare is still starting (nothing may be written to it yet)."""
        spare = self.spare
        if spare is None or not spare.usable or not spare.started:
            return None
        self.spare = None
        spare.adopt(index, generation)
        log.info("sandbox.spare_taken", host=index, pid=spare.pid)
        self._start_spare()
        return spare

    def _start_spare(self) -> asyncio.Task[None] | None:
        if self.closed or self.spare is not None:
            return None
        self._spares += 1
        host = self.new_host(SPARE, self._spares)
        self.spare = host

        async def start() -> None:
            try:
                await host.start()
            except (HostStartFailed, OSError) as exc:
                log.warning("sandbox.spare_start_failed", error=str(exc))
                if self.spare is host:
                    self.spare = None

        return self._in_background(start())

    def _died(self, host: Host) -> None:
        if host.index == SPARE:  # not carrying runs yet: another is started when one is taken
            if self.spare is host:
                self.spare = None
            return
        self._respawn_soon(host)

    def _stuck(self, host: Host, workflow_id: str | None) -> None:
        """A Worker of this host went past the CPU limit (in a run, or in a timer it left
        behind): its thread may spin on until the process ends. Quarantine its workflow; retire
        the host, and kill it once its runs are done or after STUCK_GRACE_S, whichever is
        first; runs still on it then run once more (see Sandbox.run)."""
        if workflow_id is not None:
            self._on_stuck_workflow(workflow_id)
        self.retire(host)
        grace_s = min(self.settings.cpu_limit_ms / 1000, STUCK_GRACE_S)

        async def deadline() -> None:
            if not await host.wait_idle(grace_s):
                host.kill(f"a Worker spun on past the CPU limit; killed after {grace_s} s more")

        if not self.closed:
            self._in_background(deadline())

    def _respawn_soon(self, host: Host) -> None:
        slot = self._slots.get(host.index)  # None: evicted meanwhile
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
