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
