"""`roomhooks` as a user runs it: `roomhooks dev` and other commands as real subprocesses.

Every process started here is stopped by its test (SIGTERM, then SIGKILL); `stop_for_good`
also kills whatever a stack left behind, so no test leaks a broker or a service.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from devtool.readiness import PROBE_SERVERS
from devtool.runenv import parse_run_env
from tests.support.polling import eventually
from tests.support.services import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
# Each service's probe server port (not the registry's: its /readyz is on its API).
PROBE_PORT_SETTINGS = {service: server.port_setting for service, server in PROBE_SERVERS.items()}
ROOMHOOKS = Path(sys.executable).parent / "roomhooks"
READY_LINE = "roomhooks ready"
READY_TIMEOUT_S = 90.0
EXIT_TIMEOUT_S = 20.0


@dataclass
class CliProcess:
    """A running `roomhooks ...` command and everything it printed so far."""

    process: asyncio.subprocess.Process
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    readers: list[asyncio.Task[None]] = field(default_factory=list)

    def output(self, lines: int = 40) -> str:
        """The last `lines` of each stream."""
        return "\n".join(["-- stdout", *self.stdout[-lines:], "-- stderr", *self.stderr[-lines:]])

    async def wait_for_line(self, wanted: Callable[[str], bool], *, timeout_s: float) -> str:
        async def seen() -> str | None:
            if self.process.returncode is not None and not any(map(wanted, self.stdout)):
                raise AssertionError(f"exited with {self.process.returncode}\n{self.output()}")
            return next((line for line in self.stdout if wanted(line)), None)

        try:
            return await eventually(seen, timeout_s=timeout_s, interval_s=0.1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.output()}") from None

    async def exit_code(self, *, timeout_s: float) -> int:
        code = await asyncio.wait_for(self.process.wait(), timeout=timeout_s)
        await asyncio.gather(*self.readers)
        return code

    async def stop(self, *, timeout_s: float = EXIT_TIMEOUT_S) -> None:
        """SIGTERM, then SIGKILL when it has not exited within `timeout_s`."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await self.exit_code(timeout_s=timeout_s)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


@dataclass
class Stack(CliProcess):
    """A running `roomhooks dev`."""

    state_dir: Path = field(kw_only=True)
    environ: dict[str, str] = field(kw_only=True, default_factory=dict)

    def run_env(self) -> dict[str, str]:
        return parse_run_env((self.state_dir / "run.env").read_text())

    def readyz_urls(self) -> dict[str, str]:
        """Every service's /readyz, from the ports `dev_environ` gave them."""
        urls = {"registry": f"{self.run_env()['ROOMHOOKS_API_URL']}/readyz"}
        for service, setting in PROBE_PORT_SETTINGS.items():
            urls[service] = f"http://127.0.0.1:{self.environ[setting]}/readyz"
        return urls


async def _collect(stream: asyncio.StreamReader, into: list[str]) -> None:
    while line := await stream.readline():
        into.append(line.decode(errors="replace").rstrip("\n"))


def clean_environ() -> dict[str, str]:
    """This process's environment without any roomhooks, Kafka or Postgres setting."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("ROOMHOOKS_", "KAFKA_")) and name != "DATABASE_URL"
    }


def dev_environ(state_dir: Path, **extra: str) -> dict[str, str]:
    """A stack's environment with ports of its own, probe servers' included, so that it never
    meets another stack's (or a `make run`'s) on the default ports."""
    env = clean_environ()
    env.update(
        ROOMHOOKS_DEV_STATE_DIR=str(state_dir),
        ROOMHOOKS_DEV_KAFKA_PORT=str(free_port()),
        ROOMHOOKS_REGISTRY_PORT=str(free_port()),
    )
    env.update({setting: str(free_port()) for setting in PROBE_PORT_SETTINGS.values()})
    env.update(extra)
    return env


async def _spawn(args: Sequence[str], env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(ROOMHOOKS),
        *args,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


def _read_output(running: CliProcess) -> None:
    process = running.process
    assert process.stdout is not None and process.stderr is not None
    running.readers = [
        asyncio.create_task(_collect(process.stdout, running.stdout)),
        asyncio.create_task(_collect(process.stderr, running.stderr)),
    ]


async def start_cli(*args: str, env: dict[str, str], cwd: Path = REPO_ROOT) -> CliProcess:
    """`roomhooks <args>` in the background; stop it with `.stop()`."""
    running = CliProcess(await _spawn(args, env, cwd))
    _read_output(running)
    return running


async def run_cli(
    *args: str, env: dict[str, str], cwd: Path = REPO_ROOT, timeout_s: float = 60.0
) -> CliProcess:
    """`roomhooks <args>` to its end (killed after `timeout_s`); its exit code and output."""
    running = await start_cli(*args, env=env, cwd=cwd)
    try:
        await running.exit_code(timeout_s=timeout_s)
    except TimeoutError:
        await running.stop(timeout_s=1)
        raise AssertionError(
            f"roomhooks {args[0]} ran over {timeout_s} s\n{running.output()}"
        ) from None
    return running


async def start_stack(env: dict[str, str], state_dir: Path) -> Stack:
    stack = Stack(await _spawn(["dev"], env, REPO_ROOT), state_dir=state_dir, environ=env)
    _read_output(stack)
    return stack


# Lines of each stream printed when a test on a stack fails: the services' last minute or so.
FAILURE_OUTPUT_LINES = 400


@contextlib.asynccontextmanager
async def ready_stack(env: dict[str, str], state_dir: Path) -> AsyncIterator[Stack]:
    """A `roomhooks dev` that printed its ready line; everything of it is gone afterwards. When
    the test fails, its last output (the services' logs are in it) is printed for pytest to
    show beside the failure."""
    stack = await start_stack(env, state_dir)
    failed = False
    try:
        await stack.wait_for_line(lambda line: READY_LINE in line, timeout_s=READY_TIMEOUT_S)
        yield stack
    except BaseException:
        failed = True
        raise
    finally:
        await stop_for_good(stack)
        if failed:
            print(f"roomhooks dev's last output:\n{stack.output(FAILURE_OUTPUT_LINES)}")


async def stop_for_good(stack: Stack, *extra: psutil.Process) -> None:
    """Whatever the test did, nothing of this stack survives it."""
    leftovers = [*children_of(stack.process.pid), *extra]
    await stack.stop(timeout_s=EXIT_TIMEOUT_S)
    for process in leftovers:
        if alive(process):
            process.kill()


def children_of(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def alive(process: psutil.Process) -> bool:
    """Running and still the same process (psutil compares the start time: no pid reuse)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def command_line(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.NoSuchProcess:
        return ""
