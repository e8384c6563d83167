"""A bash script run as a user would in a terminal, `bash -e`, with what it printed.

It runs in a session of its own, so that whatever it leaves in the background (a `listen ...
&`) is found by its process group and stopped with it when the test is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.polling import eventually

STOP_TIMEOUT_S = 10.0


@dataclass
class Script:
    """A running (or finished) script and every line it and its background jobs printed."""

    process: asyncio.subprocess.Process
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    readers: list[asyncio.Task[None]] = field(default_factory=list)

    def output(self, last: int = 80) -> str:
        return "\n".join(["-- stdout", *self.stdout[-last:], "-- stderr", *self.stderr[-last:]])

    async def finish(self, *, timeout_s: float) -> int:
        """The script's exit code; AssertionError when it runs over `timeout_s`.

        Polled: `process.wait()` also waits for the output pipes to close, which a job the
        script left in the background holds open."""

        async def exited() -> bool:
            return self.process.returncode is not None

        try:
            await eventually(exited, timeout_s=timeout_s, interval_s=0.1)
        except AssertionError:
            raise AssertionError(f"the script ran over {timeout_s} s\n{self.output()}") from None
        assert self.process.returncode is not None
        return self.process.returncode


async def _collect(stream: asyncio.StreamReader, into: list[str]) -> None:
    while line := await stream.readline():
        into.append(line.decode(errors="replace").rstrip("\n"))


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


@contextlib.asynccontextmanager
async def bash_script(path: Path, *, cwd: Path, env: dict[str, str]) -> AsyncIterator[Script]:
    """`bash -e path` in `cwd`; afterwards its whole process group is stopped (SIGTERM, then
    SIGKILL for what still holds its output open)."""
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-e",
        str(path),
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    assert process.stdout is not None and process.stderr is not None
    script = Script(process)
    script.readers = [
        asyncio.create_task(_collect(process.stdout, script.stdout)),
        asyncio.create_task(_collect(process.stderr, script.stderr)),
    ]
    try:
        yield script
    finally:
        _signal_group(process.pid, signal.SIGTERM)  # the session's group: its id is bash's pid
        done, _ = await asyncio.wait(script.readers, timeout=STOP_TIMEOUT_S)
        if len(done) < len(script.readers):
            _signal_group(process.pid, signal.SIGKILL)
            await asyncio.wait(script.readers, timeout=STOP_TIMEOUT_S)
        for reader in script.readers:
            reader.cancel()
        if process.returncode is None:  # its group is gone: nothing holds the pipes now
            await process.wait()
