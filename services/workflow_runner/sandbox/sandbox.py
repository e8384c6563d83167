"""The sandbox the runner calls: Deno host processes placed per organization, each run sent
to its organization's host.

An organization's runs go to a host position of its own, never shared with another
organization (placement.py): at most `max_hosts` positions, assigned on demand; an idle one is
evicted, least recently used first, when a new organization needs one; when all carry runs, the
new organization waits (bounded). Its workflows' Workers stay warm there; a position carries at
most `max_runs_per_host` runs at once (the rest wait their turn). Hosts are started, replaced,
retired and killed as lifecycle.py says. A run whose host died under it runs once more, on a
host of its own (the culprit, unknown, ends nothing but itself the second time: a run killed
with a spinning host may be a bomb of its own). A workflow that went past a time limit or
crashed its host alone is quarantined for a while (quarantine.py): its runs go to its
organization's quarantine position; not for a wall time spent waiting for a CPU its host did
not get (starvation.py).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import structlog

from services.workflow_runner.sandbox.cgroup import Cgroups
from services.workflow_runner.sandbox.host import Host, HostPaths
from services.workflow_runner.sandbox.launch import (
    link_host_tools,
    worker_prelude,
    write_import_map,
)
from services.workflow_runner.sandbox.lifecycle import (
    EXTRA_HOSTS,
    Hosts,
    HostSlot,
    SandboxUnavailable,
)
from services.workflow_runner.sandbox.models import (
    Bindings,
    Language,
    RunOutcome,
    RunRequest,
    SandboxSettings,
)
from services.workflow_runner.sandbox.placement import Placement, PoolBusy
from services.workflow_runner.sandbox.quarantine import Quarantine
from shared.code_check import compile_check, packaged_deno

log = structlog.get_logger(__name__)

__all__ = ["EXTRA_HOSTS", "Sandbox", "SandboxUnavailable"]

SlotKey = tuple[str, bool]  # (organization, quarantined)


class Sandbox:
    """Runs workflow code in Deno, each organization's on hosts of its own; `start` before
    the first run, `close` kills every host."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self.closed = False
        self._hosts: Hosts | None = None  # once started
        self._cgroups: Cgroups | None = None
        # Host positions by (organization, quarantined), at most max_hosts (placement.py).
        self._placement: Placement[HostSlot] = Placement(
            settings.max_hosts, make=self._new_slot, evict=self._evict, wait_s=settings.host_wait_s
        )
        self._workdir: Path | None = None
        self._deno: str | None = None
        self._quarantine = Quarantine()

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
        self._deno = s.deno_bin or packaged_deno()
        try:
            exec_path = link_host_tools(self._workdir / "bin", self._deno)
        except ValueError as exc:
            await self.close()
            raise SandboxUnavailable(str(exc)) from None
        paths = HostPaths(
            exec_path=exec_path,
            workdir=self._workdir,
            deno_dir=deno_dir,
            import_map=write_import_map(self._workdir),
            prelude=worker_prelude(),
        )
        cgroups = Cgroups(
            memory_max_mb=s.memory_max_mb,
            pids_max=s.pids_max,
            parent=Path(s.cgroup_parent) if s.cgroup_parent else None,
        )
        cgroups.prepare()
        self._cgroups = cgroups
        self._hosts = Hosts(s, paths=paths, cgroups=cgroups, on_stuck_workflow=self._quarantined)
        try:
            await self._hosts.start()
        except BaseException:
            await self.close()
            raise
        log.info("sandbox.started", max_hosts=s.max_hosts, cgroups=cgroups.available)

    async def close(self) -> None:
        """Kill every host (retiring ones too) and remove the private directory."""
        self.closed = True
        if self._hosts is not None:
            await self._hosts.close()
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
        if self.closed or self._hosts is None:
            raise SandboxUnavailable("the sandbox is not running")
        key = (request.organization_id, self.quarantined(request.workflow_id))
        try:
            slot = await self._placement.acquire(key)
        except PoolBusy as exc:
            log.warning("sandbox.hosts_busy", organization_id=request.organization_id,
                        waited_s=self.settings.host_wait_s)  # fmt: skip
            raise SandboxUnavailable(str(exc)) from exc
        try:
            outcome = await slot.run(request, bindings)
        finally:
            self._placement.release(key)
        if outcome.crashed:
            # Every run a dead host carried fails with it, and which one killed it is unknown.
            # Each runs once more, on a host of its own: a bystander succeeds there, and the
            # culprit ends nothing but itself, recorded as the crash it causes again.
            log.info("sandbox.run_again", run_id=request.run_id, error=outcome.error)
            outcome = await self._hosts.run_alone(request, bindings)
        if outcome.starved:
            # Its time went waiting for a CPU: no strike against the workflow. (Past the CPU
            # limit it was quarantined already, when the host said so.)
            log.info("sandbox.starved_timeout", run_id=request.run_id,
                     workflow_id=request.workflow_id)  # fmt: skip
        elif outcome.status == "timeout" or outcome.crashed:
            self._quarantined(request.workflow_id)
        return outcome

    def quarantined(self, workflow_id: str) -> bool:
        """Whether the workflow's runs go to its organization's quarantine host."""
        return self._quarantine.holds(workflow_id, now=time.monotonic())

    def _quarantined(self, workflow_id: str) -> None:
        """The workflow went past a time limit or crashed its host: into quarantine."""
        quarantine = self._quarantine
        if quarantine.add(workflow_id, now=time.monotonic()):
            log.info("sandbox.quarantined", workflow_id=workflow_id, seconds=quarantine.seconds)

    async def compile_check(self, code: str, language: Language) -> None:
        """Raise CodeError for a syntax error or no default-exported function. Never runs the
        code; also usable without a started sandbox (see shared.code_check)."""
        await compile_check(code, language, deno_bin=self._deno or self.settings.deno_bin)

    @property
    def directory(self) -> Path | None:
        """The private directory of this sandbox (its hosts' command lines name its sockets)."""
        return self._workdir

    @property
    def spare(self) -> Host | None:
        """The host started ahead for the next position whose host is replaced."""
        return self._hosts.spare if self._hosts is not None else None

    def hosts(self) -> list[Host | None]:
        """The current host of each organization placed, quarantines aside."""
        return [slot.host for (_, quarantine), slot in self._placement.items() if not quarantine]

    @property
    def waiting_for_host(self) -> int:
        """Runs waiting for a host: every one of max_hosts carries another account's runs."""
        return self._placement.waiting

    def host_for(self, organization_id: str, *, quarantine: bool = False) -> Host | None:
        """The current host of an organization (or of its quarantine), if it has one."""
        slot = self._placement.get((organization_id, quarantine))
        return slot.host if slot is not None else None

    def _new_slot(self, key: SlotKey) -> HostSlot:
        assert self._hosts is not None  # placed only once started
        return self._hosts.new_slot(key[0], quarantine=key[1])

    def _evict(self, key: SlotKey, slot: HostSlot) -> None:
        """The pool is full and another organization needs a host: this idle one's goes."""
        assert self._hosts is not None
        self._hosts.evict(slot)
