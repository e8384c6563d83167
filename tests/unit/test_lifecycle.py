"""A service process serves until SIGTERM or SIGINT, then stops: real signals to a real child
process running `run_until_signalled` on the services' event loop (uvloop)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from shared.lifecycle import YOUNG_COLLECTION_THRESHOLD

ROOT = Path(__file__).resolve().parents[2]

# The child prints each step of its life, one per line; the test reads them as they come.
CHILD = """
import asyncio, gc, sys, uvloop
from shared.lifecycle import run_until_signalled

mode = sys.argv[1]

def say(word):
    print(word, flush=True)

class Service:
    async def start(self):
        say("starting")
        if mode == "slow-start":
            await asyncio.sleep(1.5)  # the signal arrives meanwhile
        say("started")

    async def stop(self):
        if mode == "heap":
            say(f"frozen={gc.get_freeze_count() > 1000}")
            say(f"young={gc.get_threshold()[0]}")
        await asyncio.sleep(0.05)  # a stop that awaits, as every real one does
        say("stopped")

def build():
    if mode == "cannot-build":
        say("cannot build")
        raise SystemExit(1)
    return Service()

uvloop.run(run_until_signalled(build))
say("exited")
"""


def start_child(mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, mode],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_until(child: subprocess.Popen[str], line: str) -> list[str]:
    assert child.stdout is not None
    seen = []
    while (got := child.stdout.readline().strip()) != line:
        assert got, f"the child ended before {line!r}: {seen}, {child.stderr.read()}"  # type: ignore[union-attr]
        seen.append(got)
    return [*seen, got]


def signalled(mode: str, *, after: str, sig: int = signal.SIGTERM) -> tuple[list[str], str, int]:
    """Run a child in `mode`, send `sig` once it has said `after`: what it said next, its
    stderr and its exit code."""
    child = start_child(mode)
    try:
        read_until(child, after)
        os.kill(child.pid, sig)
        out, err = child.communicate(timeout=10)
    finally:
        child.kill()
    return out.split(), err, child.returncode


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serves_until_a_stop_signal_then_stops_and_exits_cleanly(sig):
    said, err, code = signalled("serve", after="started", sig=sig)
    assert said == ["stopped", "exited"], err
    assert code == 0, err


def test_a_signal_during_the_start_is_kept_and_stops_the_service_once_started():
    said, err, code = signalled("slow-start", after="starting")
    assert said == ["started", "stopped", "exited"], err
    assert code == 0, err


def test_a_service_that_cannot_be_built_exits_with_its_code_and_is_never_started():
    child = start_child("cannot-build")
    try:
        out, err = child.communicate(timeout=10)
    finally:
        child.kill()
    assert out.split() == ["cannot", "build"], err
    assert child.returncode == 1, err


def test_the_collector_is_tuned_and_what_the_start_built_frozen_out_of_its_scans():
    said, err, _ = signalled("heap", after="started")
    assert said == ["frozen=True", f"young={YOUNG_COLLECTION_THRESHOLD}", "stopped", "exited"], err
