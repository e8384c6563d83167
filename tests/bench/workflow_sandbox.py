"""`python -m tests.bench.workflow_sandbox`: the Deno sandbox's latency and throughput.

Runs the CollabKit webhooks guide's "Log new participants" workflow (one `room.get()` binding call,
one `console.log`) with in-memory bindings and prints a table: host start, a new version's cold
start, warm latency (p50/p99, one run at a time), and executions/s with `--concurrency` runs in
flight over `--workflows` workflows of `--organizations` accounts (a host each), with the CPU they
cost (Python + Deno hosts). Numbers are for comparison between runs on one machine; nothing gates on
them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from services.workflow_runner.sandbox import (
    FetchRequest,
    FetchResponse,
    RunOutcome,
    RunRequest,
    Sandbox,
    SandboxSettings,
)

LOG_NEW_PARTICIPANTS = """\
export default async function(event, { room }) {
  const roomData = await room.get();
  console.log(`[${event.event}] User ${event.data.userId} in room ${roomData.name}`);
  return { logged: true };
}"""

EVENT = {
    "id": "evt-1",
    "event": "participant.joined",
    "timestamp": "2026-05-29T10:06:00.000Z",
    "data": {"userId": "user-001", "roomId": "c3003c93-60cf-4184-b85f-20be14d26dac"},
}


class TrivialBindings:
    async def call(self, method: str, args: list[Any]) -> Any:
        return {"id": EVENT["data"]["roomId"], "name": "Standup"}

    async def fetch(self, request: FetchRequest) -> FetchResponse:
        return FetchResponse(200, {}, b"")


def cpu_s(pids: list[int]) -> float:
    """CPU time of this process and the given children (user + system), in seconds; a child
    gone meanwhile counts nothing (its CPU is then missing from the figure, not the run)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = time.process_time()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # a host that died meanwhile (its runs said why)
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def run(
    sandbox: Sandbox, workflow: str, version: int, n: int, organization: str = "org-0"
) -> RunOutcome:
    outcome = await sandbox.run(
        RunRequest(
            f"{workflow}-{version}-{n}",
            workflow,
            version,
            LOG_NEW_PARTICIPANTS,
            "js",
            EVENT,
            organization_id=organization,
        ),
        TrivialBindings(),
    )
    if outcome.status != "success":
        raise RuntimeError(f"run failed: {outcome.error}")
    return outcome


async def measure(
    *,
    max_hosts: int = 8,
    organizations: int = 2,
    versions: int = 20,
    runs: int = 2000,
    workflows: int = 8,
    concurrency: int = 16,
    seconds: float = 5.0,
) -> dict[str, float]:
    """Start a sandbox and time it; every figure as a number (milliseconds, per second)."""
    sandbox = Sandbox(SandboxSettings(max_hosts=max_hosts, max_runs_per_host=concurrency))
    started = time.perf_counter()
    await sandbox.start()
    start_ms = (time.perf_counter() - started) * 1000
    try:
        # A new version as deploys bring one: the host idle for a moment before it (its spare
        # Worker made meanwhile); then versions back to back, each waiting on the spare's
        # replacement, which the run before it left to be made.
        cold, back_to_back = [], []
        for version in range(1, versions + 1):
            await asyncio.sleep(0.2)
            t0 = time.perf_counter()
            outcome = await run(sandbox, "wf-cold", version, 0)
            cold.append((time.perf_counter() - t0) * 1000)
            assert outcome.cold
        for version in range(versions + 1, 2 * versions + 1):
            t0 = time.perf_counter()
            outcome = await run(sandbox, "wf-cold", version, 0)
            back_to_back.append((time.perf_counter() - t0) * 1000)
            assert outcome.cold

        for n in range(50):  # warm up the Worker and both ends of the socket
            await run(sandbox, "wf-warm", 1, n)
        warm = []
        for n in range(runs):
            t0 = time.perf_counter()
            outcome = await run(sandbox, "wf-warm", 1, 1000 + n)
            warm.append((time.perf_counter() - t0) * 1000)
            assert not outcome.cold

        # Workflow w of organization w % organizations: each organization has a host.
        names = [(f"wf-load-{w}", f"org-{w % organizations}") for w in range(workflows)]
        for workflow, organization in names:
            await run(sandbox, workflow, 1, 0, organization)
        pids = [h.pid for h in sandbox.hosts() if h is not None and h.pid is not None]
        done = 0
        deadline = time.perf_counter() + seconds

        async def worker(k: int) -> None:
            nonlocal done
            n = 0
            while time.perf_counter() < deadline:
                n += 1
                workflow, organization = names[(k + n) % len(names)]
                await run(sandbox, workflow, 1, 10_000 * (k + 1) + n, organization)
                done += 1

        cpu0, t0 = cpu_s(pids), time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        wall, cpu = time.perf_counter() - t0, cpu_s(pids) - cpu0
    finally:
        await sandbox.close()

    return {
        "hosts": len(pids),
        "organizations": organizations,
        "concurrency": concurrency,
        "workflows": workflows,
        "versions": versions,
        "runs": runs,
        "start_ms": start_ms,
        "cold_p50_ms": statistics.median(cold),
        "cold_min_ms": min(cold),
        "cold_max_ms": max(cold),
        "cold_back_to_back_p50_ms": statistics.median(back_to_back),
        "warm_p50_ms": percentile(warm, 50),
        "warm_p99_ms": percentile(warm, 99),
        "exec_per_s": done / wall,
        "exec_per_cpu_s": done / cpu,
        "cores_busy": cpu / wall,
    }


def rows(r: dict[str, float]) -> list[tuple[str, str]]:
    return [
        ("hosts / in flight / workflows",
         f"{r['hosts']:.0f} / {r['concurrency']:.0f} / {r['workflows']:.0f}"),
        ("sandbox start (the spare host)", f"{r['start_ms']:.0f} ms"),
        (f"cold start, new version (p50 of {r['versions']:.0f})",
         f"{r['cold_p50_ms']:.1f} ms (min {r['cold_min_ms']:.1f}, max {r['cold_max_ms']:.1f})"),
        ("cold start, versions back to back (p50)", f"{r['cold_back_to_back_p50_ms']:.1f} ms"),
        (f"warm run p50 / p99 (of {r['runs']:.0f}, one at a time)",
         f"{r['warm_p50_ms']:.2f} ms / {r['warm_p99_ms']:.2f} ms"),
        ("executions/s (in flight: concurrency)", f"{r['exec_per_s']:,.0f}"),
        ("executions per CPU-second (Python + hosts)", f"{r['exec_per_cpu_s']:,.0f}"),
        ("CPU cores busy", f"{r['cores_busy']:.2f} of {os.cpu_count()}"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-hosts", type=int, default=8)
    parser.add_argument("--organizations", type=int, default=2, help="accounts of the load")
    parser.add_argument("--versions", type=int, default=20, help="cold starts to time")
    parser.add_argument("--runs", type=int, default=2000, help="warm runs to time")
    parser.add_argument("--workflows", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--json-out", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args()
    result = asyncio.run(
        measure(
            max_hosts=args.max_hosts,
            organizations=args.organizations,
            versions=args.versions,
            runs=args.runs,
            workflows=args.workflows,
            concurrency=args.concurrency,
            seconds=args.seconds,
        )
    )
    if args.json_out:
        args.json_out.write_text(json.dumps(result))
    table = rows(result)
    width = max(len(k) for k, _ in table)
    for key, value in table:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
