"""memory_watch: the resident set read from /proc, and the watch that calls once over it."""

from __future__ import annotations

import os

from services.workflow_runner.sandbox.memory_watch import resident_bytes, watch


def test_resident_bytes_of_a_live_process_and_of_one_that_is_gone(tmp_path) -> None:
    assert resident_bytes(os.getpid()) > 1024 * 1024
    assert resident_bytes(12345, proc=tmp_path) is None


async def test_watch_reports_once_over_the_limit_and_stops() -> None:
    seen: list[int] = []
    await watch(os.getpid(), limit_bytes=1024, alive=lambda: True, on_over=seen.append)
    assert len(seen) == 1 and seen[0] > 1024


async def test_watch_ends_with_the_process_without_reporting() -> None:
    seen: list[int] = []
    await watch(os.getpid(), limit_bytes=1024, alive=lambda: False, on_over=seen.append)
    assert seen == []
