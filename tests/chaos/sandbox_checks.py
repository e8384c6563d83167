"""The sandbox scenario's checks, once the attack is over: every run recorded with a final status,
every hostile one contained by its own reason (or as the bystander of a crash), the benign one
successful, its latency figures, and no Deno host left busy, fat or extra."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import TYPE_CHECKING, Any

import asyncpg
import psutil

from services.workflow_runner.sandbox import Sandbox
from services.workflow_runner.sandbox.sandbox import EXTRA_HOSTS
from services.workflow_runner.settings import RunnerSettings
from tests.bench.workflow_sandbox import percentile
from tests.chaos.hostile_workflows import COLLATERAL, CPU_LIMIT, WALL_TIME
from tests.chaos.outcome import ScenarioOutcome
from tests.support.polling import eventually
from tests.support.receiver import Receiver

if TYPE_CHECKING:
    from tests.chaos.sandbox_attack import Attack

LATENCY_LIMIT = 2.0  # the benign p99 during the attack, over its quiet p99
IDLE_CPU_PERCENT = 50.0  # a host above this after the attack still runs something


async def check_all(
    outcome: ScenarioOutcome,
    pool: asyncpg.Pool,
    sandbox: Sandbox,
    settings: RunnerSettings,
    attack: Attack,
    receiver: Receiver,
) -> None:
    sent = attack.sent
    rows = {
        str(r["id"]): r
        for r in await pool.fetch(
            "SELECT id, status, result, error, logs FROM workflow.executions WHERE id = ANY($1)",
            [uuid.UUID(s) for s in sent],
        )
    }
    recorded = [s for s in sent if s in rows and rows[s]["status"] != "running"]
    outcome.sent, outcome.delivered = len(sent), len(recorded)
    outcome.lost = outcome.sent - outcome.delivered
    outcome.check(outcome.lost == 0, f"{outcome.lost} requested runs have no final execution row")
    raised = attack.benign.raised + attack.hostile_raised
    outcome.check(not raised, f"the runner raised instead of recording: {raised[:3]}")
    _check_benign(outcome, attack, rows)
    _check_hostile(outcome, attack, rows, settings)
    fetched = len(receiver.received["/fetched"])
    # A run whose host died under it runs once more: twice the cap per wave at the most.
    cap = settings.max_fetches_per_run * attack.plan.waves * 2
    outcome.details["fetches_reaching_the_receiver"] = fetched
    outcome.check(fetched <= cap, f"{fetched} fetches reached the receiver, at most {cap} may")
    await _check_hosts(outcome, sandbox, settings)


def _check_benign(outcome: ScenarioOutcome, attack: Attack, rows: dict[str, Any]) -> None:
    benign = attack.benign
    failed = [(run_id, status) for _, run_id, status, _ in benign.runs if status != "success"]
    outcome.check(
        not failed,
        f"{len(failed)} of {len(benign.runs)} benign runs did not succeed, e.g. "
        f"{[(s, _reason(rows.get(r))) for r, s in failed[:3]]}",
    )
    quiet, under = benign.latencies("quiet"), benign.latencies("attack")
    figures = {
        "benign_runs": {"quiet": len(quiet), "attack": len(under), "failed": len(failed)},
        "attack_s": round(attack.attack_s, 1),
    }
    if quiet and under:
        for name, values in (("quiet", quiet), ("attack", under)):
            for p in (50, 99):
                figures[f"{name}_p{p}_ms"] = round(percentile(values, p), 2)
        ratio = figures["attack_p99_ms"] / figures["quiet_p99_ms"]
        figures |= {"p99_ratio": round(ratio, 2), "latency_ok": ratio <= LATENCY_LIMIT}
    else:
        figures |= {"p99_ratio": None, "latency_ok": False}
        outcome.check(False, "the benign workflow ran in only one of the two phases")
    outcome.details |= figures


def _check_hostile(
    outcome: ScenarioOutcome, attack: Attack, rows: dict[str, Any], settings: RunnerSettings
) -> None:
    report: dict[str, list[dict[str, str]]] = {}
    log_cap = settings.max_log_bytes + 1024  # plus the one entry that says what was dropped
    for run_id, (workflow_id, _wave) in attack.hostile_runs.items():
        hostile, row = attack.tenant.hostile_ids[workflow_id], rows.get(run_id)
        if row is None or row["status"] == "running":
            continue  # counted as lost
        status, reason = row["status"], _reason(row)
        report.setdefault(hostile.name, []).append({"status": status, "reason": reason[:200]})
        if hostile.status == "success":
            result = json.dumps(row["result"])
            ok = status == "success" and hostile.expected in result
        else:
            own = status == hostile.status and hostile.expected in reason
            stopped = status == "timeout" and (  # see HOSTILE
                reason.startswith(CPU_LIMIT) or reason.endswith(WALL_TIME)
            )
            ok = own or stopped or (status == "error" and reason.startswith(COLLATERAL))
        outcome.check(ok, f"{hostile.name!r} was not contained: {status}, {reason[:200]!r}")
        logs = sum(len(e.get("message", "").encode()) for e in row["logs"] or [])
        outcome.check(logs <= log_cap, f"{hostile.name!r} left {logs} bytes of logs")
    outcome.details["hostile"] = report


def _reason(row: Any) -> str:
    if row is None:
        return "no row"
    error = row["error"] or {}
    return str(error.get("message") or "")


async def _check_hosts(outcome: ScenarioOutcome, sandbox: Sandbox, settings: RunnerSettings):
    """Once the attack is over, no Deno process beyond the hosts in use, none of them busy
    (a spinning thread left behind) or over the memory limit."""
    expected = settings.max_hosts + EXTRA_HOSTS
    deno = await _settled_hosts(sandbox, expected)
    for process in deno:  # the first call starts the measurement
        with contextlib.suppress(psutil.NoSuchProcess):
            process.cpu_percent(interval=None)
    await asyncio.sleep(1.0)
    hosts = []
    for process in deno:
        with contextlib.suppress(psutil.NoSuchProcess):
            hosts.append({"pid": process.pid, "cpu_percent": process.cpu_percent(interval=None),
                          "rss_mb": process.memory_info().rss >> 20})  # fmt: skip
    outcome.details["hosts_after"] = hosts
    outcome.details["host_generations"] = [h.generation if h else None for h in sandbox.hosts()]
    outcome.check(
        len(deno) <= expected,
        f"{len(deno)} Deno processes are left after the attack, for at most {settings.max_hosts}"
        f" hosts placed on organizations and {EXTRA_HOSTS} more (the spare)",
    )
    busy = [h for h in hosts if h["cpu_percent"] > IDLE_CPU_PERCENT]
    outcome.check(not busy, f"hosts still busy after the attack: {busy}")
    big = [h for h in hosts if h["rss_mb"] > settings.memory_max_mb]
    outcome.check(not big, f"hosts over {settings.memory_max_mb} MB after the attack: {big}")


async def _settled_hosts(sandbox: Sandbox, expected: int) -> list[psutil.Process]:
    """This sandbox's Deno processes once retired hosts are gone (drained, then killed)."""
    mark = str(sandbox.directory)

    def ours() -> list[psutil.Process]:
        return [p for p in psutil.Process().children(recursive=True) if _host_of(p, mark)]

    async def settled() -> list[psutil.Process] | None:
        hosts = ours()
        return hosts if len(hosts) <= expected else None

    with contextlib.suppress(AssertionError):
        return await eventually(settled, timeout_s=15, interval_s=0.2)
    return ours()


def _host_of(process: psutil.Process, mark: str) -> bool:
    try:
        alive = process.status() != psutil.STATUS_ZOMBIE
        return alive and any(mark in arg for arg in process.cmdline())
    except psutil.NoSuchProcess:
        return False
