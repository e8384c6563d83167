"""Telling a starved host from a wedged one, and from one busy with its own runs: the waits
for a CPU and the CPU times of its threads, read from schedstat."""

from __future__ import annotations

import os
from pathlib import Path

from services.workflow_runner.sandbox.starvation import (
    STARVED_RAN,
    STARVED_SHARE,
    WAITING_SHARE,
    Waited,
    starved,
    waited,
    waiting_for_cpu,
)

SPAN = 4.0
S = 10**9  # ns
START = Waited(10.0, {1: (S, S)})


def later(*, waited_s: float, ran_s: float) -> Waited:
    """A reading SPAN after START, its thread having waited and run that much more."""
    return Waited(START.at + SPAN, {1: (S + int(ran_s * S), S + int(waited_s * S))})


def test_threads_that_waited_for_a_cpu_and_got_little_of_one_are_starved() -> None:
    assert starved(START, later(waited_s=STARVED_SHARE * SPAN, ran_s=0.01))
    assert starved(START, later(waited_s=3 * SPAN, ran_s=0.0))  # several threads waiting


def test_threads_that_hardly_waited_are_not_starved() -> None:
    assert not starved(START, later(waited_s=0.9 * STARVED_SHARE * SPAN, ran_s=0.0))


def test_a_loaded_machines_short_waits_make_a_host_short_of_cpu_not_starved() -> None:
    loaded = later(waited_s=WAITING_SHARE * SPAN, ran_s=0.1 * SPAN)
    assert waiting_for_cpu(START, loaded) and not starved(START, loaded)


def test_threads_crowding_each_other_on_the_cpus_they_get_are_short_of_cpu_not_starved() -> None:
    # Sixteen runs of one workflow on two cores: they wait, but they run on a core or more.
    crowded = later(waited_s=14 * SPAN, ran_s=STARVED_RAN * SPAN)
    assert waiting_for_cpu(START, crowded)  # a late answer: busy, not wedged
    assert not starved(START, crowded)  # a timeout: the workflow's own load


def test_a_wedged_host_is_not_waiting_for_a_cpu() -> None:
    # Its event loop deadlocked, or spinning on a machine with a core to spare.
    assert not waiting_for_cpu(START, later(waited_s=0.0, ran_s=0.0))
    assert not waiting_for_cpu(START, later(waited_s=0.1, ran_s=SPAN))


def test_nothing_is_told_without_two_readings_with_time_between_them() -> None:
    for judge in (starved, waiting_for_cpu):
        assert not judge(None, later(waited_s=SPAN, ran_s=0.0))
        assert not judge(START, None)
        assert not judge(START, Waited(START.at, {1: (S, S + int(SPAN * S))}))


def test_a_thread_that_ended_meanwhile_does_not_hide_the_others_wait() -> None:
    # A Worker's thread that had waited 40 s ends; the main thread waits three quarters of
    # the span: a sum over the threads there would have fallen by 38.5 s.
    before = Waited(10.0, {1: (S // 10, S // 2), 2: (S // 20, 40 * S)})
    after = Waited(10.0 + 2, {1: (S // 10, 2 * S)})
    assert waiting_for_cpu(before, after)
    assert starved(before, after)


def test_a_thread_born_meanwhile_counts_whole_and_a_reused_id_counts_afresh() -> None:
    before = Waited(10.0, {1: (S, S), 2: (5 * S, 9 * S)})
    # Thread 3 is new; thread 2 ended and its id went to a new thread (its times went back).
    after = Waited(10.0 + 2, {1: (S, S), 2: (0, 2 * S // 5), 3: (0, 2 * S // 5)})
    assert waiting_for_cpu(before, after)  # 0.8 s of 2 waited
    assert not starved(before, after)  # less than half


def write_task(proc: Path, pid: int, tid: int, text: str) -> None:
    task = proc / str(pid) / "task" / str(tid)
    task.mkdir(parents=True)
    (task / "schedstat").write_text(text)


def test_a_reading_sums_the_cpu_time_and_the_wait_of_every_thread(tmp_path: Path) -> None:
    write_task(tmp_path, 42, 42, "1000000000 2500000000 17\n")
    write_task(tmp_path, 42, 43, "500000000 500000000 3\n")
    write_task(tmp_path, 42, 44, "garbage\n")  # a thread's file cut short: left out
    reading = waited(42, proc=tmp_path)
    assert reading is not None
    assert (reading.ran_s, reading.waited_s) == (1.5, 3.0)


def test_no_reading_for_a_process_that_is_gone_or_whose_threads_say_nothing(
    tmp_path: Path,
) -> None:
    assert waited(None) is None
    assert waited(42, proc=tmp_path) is None
    write_task(tmp_path, 7, 7, "")
    assert waited(7, proc=tmp_path) is None


def test_this_machines_kernel_keeps_the_times_of_a_running_process() -> None:
    first = waited(os.getpid())
    second = waited(os.getpid())
    assert first is not None and second is not None
    assert second.at >= first.at and second.ran_s >= first.ran_s > 0
