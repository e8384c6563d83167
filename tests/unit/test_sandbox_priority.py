"""Which thread of a host gets the lowest CPU priority: only a Worker's, found by its name."""

from __future__ import annotations

from pathlib import Path

from services.workflow_runner.sandbox import priority


def fake_proc(tmp_path: Path, threads: dict[int, str]) -> Path:
    for tid, name in threads.items():
        task = tmp_path / "42" / "task" / str(tid)
        task.mkdir(parents=True)
        (task / "comm").write_text(name + "\n")
    return tmp_path


def test_a_workers_thread_is_found_by_its_name(tmp_path: Path):
    proc = fake_proc(tmp_path, {42: "deno", 50: "worker-1", 51: "tokio-runtime-w", 52: "worker-2"})
    assert priority.thread_id(42, "worker-2", proc) == 52
    assert priority.thread_id(42, "worker-3", proc) is None


def test_a_process_that_is_gone_has_no_thread(tmp_path: Path):
    assert priority.thread_id(42, "worker-1", tmp_path) is None


def test_only_a_worker_thread_name_is_reniced():
    # Checked before any lookup: the host's main thread or runtime threads are never named.
    for name in ("deno", "tokio-runtime-w", "worker-", "worker-1; rm", None, 7):
        assert not priority.demote(1, name)
