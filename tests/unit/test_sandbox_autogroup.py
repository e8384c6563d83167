"""A host's autogroup priority is set by writing a nice value to /proc; where that cannot be
done, the reason comes back (and the host runs on, ranked by its nice values alone)."""

from __future__ import annotations

from pathlib import Path

from services.workflow_runner.sandbox import autogroup


def test_the_autogroup_of_a_process_gets_the_nice_value(tmp_path: Path):
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "autogroup").write_text("/autogroup-7 nice 0\n")
    assert autogroup.set_nice(42, autogroup.LOWEST, tmp_path) is None
    assert (tmp_path / "42" / "autogroup").read_text() == "19\n"


def test_a_process_without_an_autogroup_file_gets_a_reason(tmp_path: Path):
    reason = autogroup.set_nice(42, 5, tmp_path)
    assert reason is not None and reason.startswith("FileNotFoundError")


def test_a_host_group_keeps_its_own_nice_when_it_carries_few_runs():
    assert autogroup.group_nice(5, blocked=False, runs=0, was=5) == 5
    assert autogroup.group_nice(5, blocked=False, runs=3, was=5) == 5


def test_a_burst_of_runs_ranks_the_group_lower_until_it_has_drained():
    assert autogroup.group_nice(5, blocked=False, runs=4, was=5) == autogroup.BUSY
    assert autogroup.group_nice(5, blocked=False, runs=2, was=autogroup.BUSY) == autogroup.BUSY
    assert autogroup.group_nice(5, blocked=False, runs=1, was=autogroup.BUSY) == 5


def test_a_blocked_worker_puts_the_group_lowest_and_a_quarantine_stays_there():
    assert autogroup.group_nice(5, blocked=True, runs=0, was=5) == autogroup.LOWEST
    assert autogroup.group_nice(19, blocked=False, runs=0, was=19) == 19
    assert autogroup.group_nice(19, blocked=False, runs=9, was=19) == 19
