"""A host's Worker threads, found by name in /proc: their CPU time read, their priority lowered;
no other thread of the host is ever touched."""

from __future__ import annotations

from pathlib import Path

from services.workflow_runner.sandbox import worker_threads
from services.workflow_runner.sandbox.worker_threads import WorkerThreads


def fake_proc(tmp_path: Path, threads: dict[int, str], cpu_ns: dict[int, int] | None = None):
    for tid, name in threads.items():
        task = tmp_path / "42" / "task" / str(tid)
        task.mkdir(parents=True)
        (task / "comm").write_text(name + "\n")
        if cpu_ns and tid in cpu_ns:
            (task / "schedstat").write_text(f"{cpu_ns[tid]} 1234 56\n")
    return tmp_path


def test_a_workers_thread_is_found_by_its_name(tmp_path: Path):
    proc = fake_proc(tmp_path, {42: "deno", 50: "worker-1", 51: "tokio-runtime-w", 52: "worker-2"})
    assert worker_threads.worker_threads(42, proc) == {"worker-1": 50, "worker-2": 52}
    threads = WorkerThreads(42, proc)
    assert threads.thread_id("worker-2") == 52
    assert threads.thread_id("worker-3") is None


def test_a_process_that_is_gone_has_no_thread(tmp_path: Path):
    assert worker_threads.worker_threads(42, tmp_path) == {}
    assert WorkerThreads(42, tmp_path).cpu_ns(["worker-1"]) == {"worker-1": None}


def test_cpu_time_is_schedstats_first_field_and_none_where_unreadable(tmp_path: Path):
    proc = fake_proc(
        tmp_path, {50: "worker-1", 51: "worker-2", 52: "worker-3"}, {50: 7_000_000, 51: 12}
    )
    (proc / "42" / "task" / "52" / "schedstat").write_text("not a number\n")
    times = WorkerThreads(42, proc).cpu_ns(["worker-1", "worker-2", "worker-3", "worker-9"])
    assert times == {"worker-1": 7_000_000, "worker-2": 12, "worker-3": None, "worker-9": None}


def test_a_thread_that_ended_is_looked_up_again_not_read_under_its_old_id(tmp_path: Path):
    proc = fake_proc(tmp_path, {50: "worker-1"}, {50: 5})
    threads = WorkerThreads(42, proc)
    assert threads.cpu_ns(["worker-1"]) == {"worker-1": 5}
    (proc / "42" / "task" / "50" / "comm").write_text("worker-7\n")  # its id, reused
    (proc / "42" / "task" / "50" / "schedstat").unlink()
    assert threads.cpu_ns(["worker-1"]) == {"worker-1": None}
    (proc / "42" / "task" / "50" / "schedstat").write_text("9 0 0\n")
    assert threads.cpu_ns(["worker-1"]) == {"worker-1": None}
    assert threads.cpu_ns(["worker-7"]) == {"worker-7": 9}


def test_only_a_worker_thread_name_is_reniced(tmp_path: Path):
    # Checked before any lookup: the host's main thread or runtime threads are never named.
    proc = fake_proc(tmp_path, {42: "deno", 51: "tokio-runtime-w"})
    threads = WorkerThreads(42, proc)
    for name in ("deno", "tokio-runtime-w", "worker-", "worker-1; rm", None, 7):
        assert not threads.demote(name)
        assert threads.thread_id(name) is None
