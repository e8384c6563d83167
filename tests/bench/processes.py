"""Every process the bench starts, and how much CPU each one used.

Each child runs in its own session (a terminal's Ctrl-C reaches the bench only, which then
stops the children in order: services, receiver, broker). `Processes.stop_all` sends SIGTERM
to each group, SIGKILL after a grace period, and kills whatever a child left behind (the
workflow runner's Deno hosts live in sessions of their own), so a run leaves nothing running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tests.support.processes import REPO


@dataclass(eq=False)
class BenchProcess:
    name: str
    argv: Sequence[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    # Seen as descendants while running: killed at the end if still there.
    descendants: list[psutil.Process] = field(default_factory=list)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                list(self.argv),
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def remember_descendants(self) -> None:
        if not self.alive():
            return
        with contextlib.suppress(psutil.NoSuchProcess):
            seen = {p.pid for p in self.descendants}
            for child in psutil.Process(self.pid).children(recursive=True):
                if child.pid not in seen:
                    self.descendants.append(child)

    def terminate(self) -> None:
        if self.alive():
            self.remember_descendants()
            _signal_group(self.pid, signal.SIGTERM)

    def wait(self, timeout_s: float) -> bool:
        """Whether it exited within `timeout_s`."""
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout=timeout_s)
            return True
        except subprocess.TimeoutExpired:
            return False

    def kill(self) -> None:
        if self.alive():
            _signal_group(self.pid, signal.SIGKILL)
            self.wait(5)
        if self.proc is not None:
            _signal_group(self.pid, signal.SIGKILL)  # what is left in its group
        for child in self.descendants:
            with contextlib.suppress(psutil.NoSuchProcess):
                if child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
                    child.kill()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


class Processes:
    """The children of one bench run, stopped in reverse start order by tiers."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._children: list[BenchProcess] = []

    def start(self, name: str, argv: Sequence[str], env: dict[str, str]) -> BenchProcess:
        child = BenchProcess(name, argv, env, self.log_dir / f"{name}.log")
        child.start()
        self._children.append(child)
        return child

    def get(self, name: str) -> BenchProcess | None:
        return next((c for c in self._children if c.name == name and c.alive()), None)

    def named(self, name: str) -> BenchProcess | None:
        """The process started under `name`, running or not."""
        return next((c for c in reversed(self._children) if c.name == name), None)

    def running(self) -> list[BenchProcess]:
        return [c for c in self._children if c.alive()]

    def stop(self, children: Sequence[BenchProcess], *, grace_s: float = 15.0) -> None:
        """SIGTERM to each, wait together up to `grace_s`, then SIGKILL the rest."""
        for child in children:
            child.terminate()
        deadline = time.monotonic() + grace_s
        for child in children:
            child.wait(max(0.0, deadline - time.monotonic()))
        for child in children:
            child.kill()

    def stop_all(self) -> None:
        """Services first, then whatever serves them (the receiver, the broker)."""
        for child in self._children:
            child.remember_descendants()
        late = {"broker", "receiver"}
        self.stop([c for c in self._children if c.name not in late])
        self.stop([c for c in self._children if c.name in late], grace_s=5.0)


def _signal_group(leader_pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(leader_pid, sig)


# --- CPU accounting ------------------------------------------------------------------------


def cpu_s(process: psutil.Process) -> float:
    """CPU seconds the process has used (user and system); 0 once it is gone."""
    try:
        times = process.cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0
    return times.user + times.system


class CpuMeter:
    """CPU seconds of named process groups over a window, as % of one core.

    A group is a function listing its processes now (a service and its children, every
    Postgres backend, the bench itself), asked at the start and at the end of the window;
    a process that appears mid-window counts from its birth, one that dies mid-window is lost.
    """

    def __init__(self, groups: dict[str, Callable[[], list[psutil.Process]]]) -> None:
        self._groups = groups
        self._start: dict[str, dict[int, tuple[psutil.Process, float]]] = {}
        self._started_at = 0.0
        self._machine = 0.0

    def start(self) -> None:
        self._started_at = time.monotonic()
        self._machine = _machine_busy_s()
        self._start = {
            name: {p.pid: (p, cpu_s(p)) for p in list_now()}
            for name, list_now in self._groups.items()
        }

    def stop(self) -> dict[str, float]:
        """% of one core used by each group since `start()` (100 = one core busy)."""
        wall = time.monotonic() - self._started_at
        used: dict[str, float] = {}
        for name, list_now in self._groups.items():
            before = self._start.get(name, {})
            now = {p.pid: p for p in list_now()}
            now.update({pid: p for pid, (p, _) in before.items() if pid not in now})
            used[name] = sum(
                max(0.0, cpu_s(p) - before.get(pid, (p, 0.0))[1]) for pid, p in now.items()
            )
        # Whatever else ran on the machine meanwhile (another benchmark skews every figure).
        machine = _machine_busy_s() - self._machine
        used["other processes"] = max(0.0, machine - sum(used.values()))
        return {name: round(100 * cpu / wall, 1) for name, cpu in used.items()}


def _machine_busy_s() -> float:
    """CPU seconds all cores spent on anything but idling, since boot."""
    t = psutil.cpu_times()
    return (
        t.user
        + t.system
        + getattr(t, "nice", 0.0)
        + getattr(t, "irq", 0.0)
        + getattr(t, "softirq", 0.0)
    )


def family(pid: int) -> list[psutil.Process]:
    """A process and all its descendants."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def postgres_processes() -> list[psutil.Process]:
    """Every process of the local Postgres server (its backends do the work)."""
    found = []
    for process in psutil.process_iter(["name", "username"]):
        name = (process.info.get("name") or "").lower()
        if name.startswith("postgres"):
            found.append(process)
    return found
