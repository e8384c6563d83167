"""Each host process in a cgroup v2 of its own, with memory.max and pids.max.

The V8 heap limit does not cover ArrayBuffers or WebAssembly memory; memory.max does. Where
the kernel does not allow it (no cgroup v2, controllers not delegated, not writable), the
sandbox logs that once, runs without it, and bounds each host's memory by polling instead
(memory_watch.py); pids.max has no stand-in.

Layout: <parent>/roomhooks-sandbox-<our pid>-host-<n>-<generation>, where <parent> is our
own cgroup (or `parent`, a cgroup delegated to us). cgroup v2 only enables controllers below
a cgroup that holds no processes itself (the root excepted), so inside a container the
deployment has to delegate an empty cgroup; we never move our own process or touch cgroups
outside <parent>.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

CONTROLLERS = ("memory", "pids")


class Cgroups:
    def __init__(
        self,
        *,
        memory_max_mb: int,
        pids_max: int,
        root: Path = Path("/sys/fs/cgroup"),
        proc_self_cgroup: Path = Path("/proc/self/cgroup"),
        parent: Path | None = None,
    ) -> None:
        self._memory_max = memory_max_mb * 1024 * 1024
        self._pids_max = pids_max
        self._root = root
        self._proc_self_cgroup = proc_self_cgroup
        self._parent = parent
        self._name = f"roomhooks-sandbox-{os.getpid()}"
        self._created: dict[str, Path] = {}
        self.available = False
        self.reason: str | None = None

    def prepare(self) -> bool:
        """Check once whether cgroups can be used; log the reason when they cannot."""
        try:
            self._parent = self._find_parent()
            self.available = True
        except (OSError, _Unavailable) as exc:
            self.available = False
            self.reason = str(exc)
            # Info, not a warning: the fallback is how the sandbox is meant to run here, and
            # the line says what differs and whether to care.
            log.info(
                "sandbox.cgroup_unavailable",
                reason=self.reason,
                what_it_means=(
                    "Deno hosts run without a cgroup's memory.max and pids.max: their memory"
                    f" is polled instead (a host over {self._memory_max >> 20} MB is killed),"
                    " the V8 heap, wall-time and CPU limits apply as ever. Fine for"
                    " development; in production delegate a cgroup v2 to the runner and"
                    " name it in ROOMHOOKS_WORKFLOWS_CGROUP_PARENT (docs/configuration.md)"
                ),
            )
        return self.available

    def _find_parent(self) -> Path:
        if not (self._root / "cgroup.controllers").is_file():
            raise _Unavailable(f"cgroup v2 is not mounted at {self._root}")
        parent = self._parent or self._own_cgroup()
        available = (parent / "cgroup.controllers").read_text().split()
        missing = [c for c in CONTROLLERS if c not in available]
        if missing:
            raise _Unavailable(f"controllers {missing} are not available in {parent}")
        enabled = (parent / "cgroup.subtree_control").read_text().split()
        wanted = [c for c in CONTROLLERS if c not in enabled]
        if wanted:
            try:
                (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in wanted))
            except OSError as exc:
                raise _Unavailable(
                    f"cannot enable {wanted} below {parent} ({exc.strerror}); "
                    "delegate an empty cgroup to the runner"
                ) from exc
        if not os.access(parent, os.W_OK):
            raise _Unavailable(f"{parent} is not writable")
        return parent

    def _own_cgroup(self) -> Path:
        for line in self._proc_self_cgroup.read_text().splitlines():
            hierarchy, _, path = line.split(":", 2)
            if hierarchy == "0":
                return self._root / path.lstrip("/")
        raise _Unavailable("this process is in no cgroup v2")

    def place(self, key: str, pid: int) -> bool:
        """Move host `key` (process `pid`) into a cgroup of its own."""
        if not self.available or self._parent is None:
            return False
        group = self._parent / f"{self._name}-host-{key}"
        try:
            group.mkdir(exist_ok=True)
            self._created[key] = group
            (group / "memory.max").write_text(str(self._memory_max))
            if (group / "memory.swap.max").exists():
                (group / "memory.swap.max").write_text("0")  # OOM-kill rather than swap
            (group / "pids.max").write_text(str(self._pids_max))
            (group / "cgroup.procs").write_text(str(pid))
        except OSError as exc:
            log.warning("sandbox.cgroup_place_failed", host=key, pid=pid, error=str(exc))
            return False
        return True

    def oom_kills(self, key: str) -> int:
        """How many times the kernel OOM-killed in host `key`'s cgroup."""
        group = self._created.get(key)
        if group is None:
            return 0
        with contextlib.suppress(OSError, ValueError):
            for line in (group / "memory.events").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    def release(self, key: str) -> None:
        """Remove host `key`'s cgroup once its process has exited."""
        group = self._created.pop(key, None)
        if group is not None:
            try:
                group.rmdir()
            except OSError as exc:
                log.warning("sandbox.cgroup_remove_failed", host=key, error=str(exc))

    def close(self) -> None:
        """Remove every cgroup left; one still holding a process stays (and is logged)."""
        for key in list(self._created):
            self.release(key)


class _Unavailable(Exception):
    pass
