"""The dev stack's children: each in its own process group, restarted when it dies, its output
shown as `name | line` (coloured on a terminal), all stopped together at the end.

Used by `roomhooks dev` (devtool.devstack); nothing here knows which services exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TextIO

import structlog

log = structlog.get_logger(__name__)

# Restarts wait 1 s, doubling to 10 s; a child that ran this long starts over at 1 s.
FIRST_RESTART_DELAY_S = 1.0
MAX_RESTART_DELAY_S = 10.0
STABLE_RUN_S = 30.0
# Foreground colours, one per name in start order; plain text when stdout is not a TTY.
PALETTE = ("36", "35", "33", "32", "34", "96", "95", "93", "92", "94")


# Here rather than in devstack because a child that cannot be spawned is one such reason.
class DevStackError(RuntimeError):
    """The stack cannot start; the message is one line saying why and what to do."""


# --- output and restart timing (pure) ------------------------------------------------------


def assign_colours(names: Sequence[str]) -> dict[str, str]:
    """A distinct ANSI colour per name (cycling only past the palette's length)."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(dict.fromkeys(names))}


def prefix_line(name: str, line: str, *, width: int, colour: str | None = None) -> str:
    """`registry | line`: the name padded to `width`, coloured when a colour is given."""
    label = f"{name:<{width}} |"
    if colour:
        label = f"\x1b[{colour}m{label}\x1b[0m"
    return f"{label} {line}"


def next_restart_delay(previous: float | None, *, ran_for_s: float) -> float:
    """1 s, then doubling up to 10 s; back to 1 s once a child had run stably."""
    if previous is None or ran_for_s >= STABLE_RUN_S:
        return FIRST_RESTART_DELAY_S
    return min(previous * 2, MAX_RESTART_DELAY_S)


# --- children ------------------------------------------------------------------------------


class PrefixedOutput:
    """Writes each child's lines to one stream as `name | line`."""

    def __init__(self, names: Sequence[str], stream: TextIO, *, colour: bool) -> None:
        self._stream = stream
        self._width = max((len(n) for n in names), default=0)
        self._colours = assign_colours(names) if colour else {}

    def write(self, name: str, line: str) -> None:
        text = prefix_line(name, line, width=self._width, colour=self._colours.get(name))
        with contextlib.suppress(BrokenPipeError, ValueError):  # reader gone: keep running
            self._stream.write(text + "\n")
            self._stream.flush()


@dataclass(frozen=True)
class ChildSpec:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    # Awaited in the background after each restart (e.g. re-create the broker's topics).
    after_restart: Callable[[], Awaitable[None]] | None = None


@dataclass(eq=False)
class _Child:
    spec: ChildSpec
    process: asyncio.subprocess.Process | None = None
    pump: asyncio.Task[None] | None = None
    watcher: asyncio.Task[None] | None = None
    started_at: float = 0.0
    stopping: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)


_LINE_LIMIT = 1024 * 1024
_DRAIN_TIMEOUT_S = 2.0


class Supervisor:
    """Runs children, each in its own process group; restarts one that dies; stops them all.

    Own process groups keep a terminal's Ctrl-C away from the children: the dev stack alone
    decides the order they stop in. Stopping is SIGTERM to the group, then SIGKILL after
    `stop_timeout_s`; once a child has exited, what is left in its group is killed too.
    """

    def __init__(self, output: PrefixedOutput, *, stop_timeout_s: float = 10.0) -> None:
        self._output = output
        self._stop_timeout_s = stop_timeout_s
        self._children: dict[str, _Child] = {}
        self._background: set[asyncio.Task[None]] = set()

    async def start(self, spec: ChildSpec) -> None:
        child = _Child(spec)
        self._children[spec.name] = child
        await self._spawn(child)
        child.watcher = asyncio.create_task(self._watch(child), name=f"watch-{spec.name}")

    async def stop(self, names: Iterable[str] | None = None) -> None:
        """Stop the named children (all when None) together and wait until they are gone."""
        wanted = set(names) if names is not None else set(self._children)
        targets = [c for n, c in self._children.items() if n in wanted and not c.stopping]
        for child in targets:
            child.stopping = True
            child.wake.set()
            self._signal(child, signal.SIGTERM)
        watchers = [c.watcher for c in targets if c.watcher is not None]
        if not watchers:
            return
        _done, pending = await asyncio.wait(watchers, timeout=self._stop_timeout_s)
        if pending:
            for child in targets:
                if child.watcher in pending:
                    log.warning("dev.child_killed", child=child.spec.name)
                    self._signal(child, signal.SIGKILL)
            await asyncio.wait(pending)
        if all(c.stopping for c in self._children.values()):
            for task in list(self._background):
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)

    async def _spawn(self, child: _Child) -> None:
        spec = child.spec
        try:
            process = await asyncio.create_subprocess_exec(
                *spec.argv,
                env=dict(spec.env),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                limit=_LINE_LIMIT,
            )
        except OSError as exc:
            raise DevStackError(f"cannot start {spec.name}: {exc}") from exc
        child.process = process
        child.started_at = time.monotonic()
        assert process.stdout is not None
        child.pump = asyncio.create_task(self._pump(spec.name, process.stdout))
        log.info("dev.child_started", child=spec.name, pid=process.pid)
        if child.stopping:  # stop() came while this restart was under way
            self._signal(child, signal.SIGTERM)

    async def _pump(self, name: str, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # longer than _LINE_LIMIT: asyncio dropped it
                self._output.write(name, "[a line too long to show was dropped]")
                continue
            if not raw:
                return
            self._output.write(name, raw.decode("utf-8", "replace").rstrip("\r\n"))

    async def _watch(self, child: _Child) -> None:
        delay: float | None = None
        name = child.spec.name
        while True:
            assert child.process is not None
            code = await child.process.wait()
            # Whatever the child started and left in its group goes with it.
            _signal_group(child.process.pid, signal.SIGKILL)
            await self._drain(child)
            if child.stopping:
                log.info("dev.child_stopped", child=name, code=code)
                return
            delay = next_restart_delay(delay, ran_for_s=time.monotonic() - child.started_at)
            self._output.write("dev", f"{name} exited with code {code}; restarting in {delay:g} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(child.wake.wait(), timeout=delay)
            if child.stopping:
                return
            try:
                await self._spawn(child)
            except DevStackError as exc:
                self._output.write("dev", str(exc))
                child.started_at = time.monotonic()
                continue
            if child.spec.after_restart is not None:
                self._run_in_background(child.spec.after_restart(), name)

    async def _drain(self, child: _Child) -> None:
        if child.pump is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(child.pump), timeout=_DRAIN_TIMEOUT_S)
        except TimeoutError:  # a grandchild still holds the pipe: stop reading it
            child.pump.cancel()

    def _signal(self, child: _Child, sig: signal.Signals) -> None:
        if child.process is not None and child.process.returncode is None:
            _signal_group(child.process.pid, sig)

    def _run_in_background(self, work: Awaitable[None], name: str) -> None:
        async def guarded() -> None:
            try:
                await work
            except Exception as exc:  # noqa: BLE001 - a failed hook must not stop the stack
                log.warning("dev.after_restart_failed", child=name, error=repr(exc))

        task = asyncio.create_task(guarded())
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _signal_group(leader_pid: int, sig: signal.Signals) -> None:
    """Signal the process group a child leads (start_new_session made its pid the group id)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(leader_pid, sig)
