"""`--profile`: py-spy on each service during the measured window of parts 1 and 5, on the
delivery process of part 1's backlog and on part 6's fanout process.

Writes py-spy's collapsed stacks to `.roomhooks/bench/profiles/<service>.txt` (one
`frame;frame;... count` per line; speedscope.app and flamegraph.pl open them) and sums the
samples by leaf frame ("self") and by frame anywhere on the stack ("total", asyncio and
runpy frames left out) for the table.
Idle threads are left out, so the counts are where the CPU went. py-spy samples without
pausing the process (`--nonblocking`), at 50 Hz: it costs a few % of a core per service.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

SERVICES = ("delivery", "fanout", "workflow_runner", "registry")
RATE_HZ = 50
_LOCATION = re.compile(r" \((?P<file>[^()]*):\d+\)$")


def py_spy() -> str:
    return str(Path(sys.executable).parent / "py-spy")


class Profiler:
    def __init__(self, out_dir: Path, *, rate_hz: int = RATE_HZ) -> None:
        """`rate_hz`: samples a second (a short window of one process can take more)."""
        self.out_dir = out_dir
        self._rate_hz = rate_hz
        self._runs: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def start(self, pids: dict[str, int], duration_s: float) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in pids.items():
            raw = self.out_dir / f"{name}.txt"
            self._runs.append((name, self._record(pid, raw, "raw", duration_s), raw))

    def _record(self, pid: int, out: Path, fmt: str, duration_s: float) -> subprocess.Popen:
        return subprocess.Popen(
            [
                py_spy(),
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(self._rate_hz),
                "--duration",
                str(max(1, round(duration_s))),
                "--format",
                fmt,
                "--nonblocking",
                "--output",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )

    async def finish(self, timeout_s: float = 30.0) -> dict[str, dict]:
        """Wait for every py-spy to write its file; the summary per service."""
        for _name, proc, _path in self._runs:
            try:
                await asyncio.to_thread(proc.wait, timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        summary = {}
        for name, _proc, path in self._runs:
            if path.suffix == ".txt" and path.exists():
                summary[name] = summarize(path.read_text(errors="replace"))
        self._runs.clear()
        return summary

    def kill(self) -> None:
        for _name, proc, _path in self._runs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


# Frames on every stack of an asyncio service: left out of the "total" list.
_PLUMBING = ("<frozen runpy>", "asyncio/", "/__main__.py")


def _short(frame: str) -> str:
    """`function (/a/b/pkg/module.py:12)` -> `function (pkg/module.py)`."""
    match = _LOCATION.search(frame)
    if not match:
        return frame
    path = Path(match["file"])
    where = f"{path.parent.name}/{path.name}" if path.parent.name else path.name
    return f"{frame[: match.start()]} ({where})"


def summarize(collapsed: str, top: int = 12) -> dict:
    """Samples by leaf frame and by frame anywhere on the stack (each counted once per stack),
    as % of all samples."""
    leaf: Counter[str] = Counter()
    total: Counter[str] = Counter()
    files: Counter[str] = Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";")]
        if not frames:
            continue
        samples += count
        leaf[frames[-1]] += count
        for frame in set(frames):
            if not any(mark in frame for mark in _PLUMBING):
                total[frame] += count
        files[_file_of(frames[-1])] += count

    def pct(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(k, round(100 * v / samples, 1)) for k, v in counter.most_common(top)]

    return {
        "samples": samples,
        "self": pct(leaf),
        "total": pct(total),
        "self_by_file": pct(files),
    }


def _file_of(frame: str) -> str:
    start = frame.rfind("(")
    return frame[start + 1 : -1] if start >= 0 and frame.endswith(")") else frame
