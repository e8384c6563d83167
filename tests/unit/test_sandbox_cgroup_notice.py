"""Where cgroup v2 is missing, the sandbox says once, in words, what that means."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from services.workflow_runner.sandbox.cgroup import Cgroups


def test_says_once_what_running_without_cgroups_means_and_whether_to_care(tmp_path: Path):
    cgroups = Cgroups(memory_max_mb=768, pids_max=64, root=tmp_path / "no-cgroup2")
    with capture_logs() as logs:
        assert cgroups.prepare() is False
    [entry] = [e for e in logs if e["event"] == "sandbox.cgroup_unavailable"]
    assert entry["log_level"] == "info"
    assert "not mounted" in entry["reason"]
    means = entry["what_it_means"]
    assert "768 MB" in means
    assert "V8 heap, wall-time and CPU limits apply" in means
    assert "Fine for development" in means
    assert "ROOMHOOKS_WORKFLOWS_CGROUP_PARENT" in means  # what production sets
