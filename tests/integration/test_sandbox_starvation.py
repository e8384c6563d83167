"""A host starved of CPU, on the real kernel and a real Deno host: its wait is told from a
wedged host's, and a run that ran out of wall time waiting for a CPU is no strike against its
workflow."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from services.workflow_runner.sandbox import Sandbox, SandboxSettings
from services.workflow_runner.sandbox.starvation import starved, waited
from tests.support.sandbox import LOG_NEW_PARTICIPANTS, MemoryBindings, request
from tests.support.sandbox_hosts import usable_host

pytestmark = pytest.mark.integration

# The CPU every process of a test is held to, so that they contend for it.
CPU = min(os.sched_getaffinity(0))


def pinned() -> None:
    os.sched_setaffinity(0, {CPU})


@contextlib.contextmanager
def spinning(*, group_nice: int = 0) -> Iterator[subprocess.Popen[bytes]]:
    """A process that keeps CPU `CPU` busy, in a session (an autogroup) of its own at
    `group_nice`, as a host runs."""
    process = subprocess.Popen(
        [sys.executable, "-c", "while True: pass"], preexec_fn=pinned, start_new_session=True
    )
    try:
        Path(f"/proc/{process.pid}/autogroup").write_text(f"{group_nice}\n")
        yield process
    finally:
        process.kill()
        process.wait()


def pin_every_thread(pid: int) -> None:
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(task.name), {CPU})


def test_a_process_whose_group_ranks_lowest_on_a_busy_cpu_is_starved() -> None:
    with spinning(), spinning(group_nice=19) as low:
        time.sleep(0.3)  # both under way
        before = waited(low.pid)
        time.sleep(1.0)
        assert starved(before, waited(low.pid))


def test_a_sleeping_process_is_not_starved_however_busy_its_cpu() -> None:
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)"], preexec_fn=pinned
    )
    try:
        with spinning():
            time.sleep(0.3)
            before = waited(sleeper.pid)
            time.sleep(1.0)
            assert not starved(before, waited(sleeper.pid))
    finally:
        sleeper.kill()
        sleeper.wait()


# ~150 ms of CPU in small pieces, each followed by a turn of the event loop (so the Worker
# answers its pings: nothing here is blocked): a few hundred ms on a CPU of its own.
CRUNCHING = """export default async () => {
  let x = 0;
  for (let i = 0; i < 300; i++) {
    for (let j = 0; j < 20000; j++) x += Math.sqrt(j);
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  return x > 0;
};"""


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    sandbox = Sandbox(SandboxSettings(max_hosts=2, wall_timeout_s=2.0))
    await sandbox.start()
    yield sandbox
    await sandbox.close()


async def test_a_run_out_of_wall_time_while_its_host_starves_does_not_quarantine_it(
    sandbox: Sandbox,
) -> None:
    alone = await sandbox.run(
        request(CRUNCHING, workflow="wf-crunch", run="alone"), MemoryBindings()
    )
    assert (alone.status, alone.result) == ("success", True), alone.error
    host = await usable_host(sandbox)
    assert host.pid is not None
    # The host's group at the lowest priority (a quarantine's), on one CPU with three busy
    # processes: it gets ~0.5 % of that CPU.
    Path(f"/proc/{host.pid}/autogroup").write_text("19\n")
    pin_every_thread(host.pid)
    with spinning(), spinning(), spinning():
        outcome = await sandbox.run(
            request(CRUNCHING, workflow="wf-crunch", run="starved"), MemoryBindings()
        )
    assert outcome.status == "timeout" and outcome.starved, outcome
    assert outcome.error is not None
    assert "(wall time)" in outcome.error["message"]
    assert "waiting for a CPU" in outcome.error["message"]
    assert not outcome.crashed and not host.died.is_set()  # late, but not killed
    assert not sandbox.quarantined("wf-crunch")
    after = await sandbox.run(
        request(LOG_NEW_PARTICIPANTS, workflow="wf-benign", run="after"), MemoryBindings()
    )
    assert after.status == "success", after.error
