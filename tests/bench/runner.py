"""`python -m tests.bench` (`make bench`, `make bench PART=delivery`): the whole benchmark.

Starts the platform (tests.bench.stack), runs the parts in order, prints a table, writes
`.roomhooks/bench/results.json`, `details.json` and `latency.png`. A part that fails is
reported and left null; the others still run. Every process started is stopped at the end,
on Ctrl-C and on SIGTERM too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

from shared.logging import configure_logging
from shared.settings import PostgresSettings, RuntimeSettings
from tests.bench import (
    baselines,
    broker_part,
    delivery_backlog,
    fanout_part,
    machine_speed,
    ordered_part,
    pipeline,
    registry_part,
    report,
    scale_part,
    scale_retention,
    soak_part,
)
from tests.bench.processes import Processes, python_module
from tests.bench.profiling import Profiler
from tests.bench.progress import Progress
from tests.bench.stack import PARTITIONS, Stack, drop_database
from tests.support.processes import REPO
from tests.support.services import LOCAL_POSTGRES

PARTS = (
    "delivery",
    "raw",
    "celery",
    "latency",
    "hol",
    "fanout",
    "workflows",
    "registry",
    "scale",
    "ordered",
    "broker",
)
# Parts run only when named (`--part soak`): minutes long, and a figure of their own.
ON_REQUEST = ("soak",)
NEEDS_STACK = set(PARTS + ON_REQUEST) - {"workflows", "broker"}


@dataclass(frozen=True)
class Durations:
    warmup_s: float = 10.0
    duration_s: float = 30.0
    lead: int = 10_000
    backlog_requests: int = 80_000
    backlog_max_s: float = 90.0
    raw_warmup_s: float = 3.0
    raw_duration_s: float = 15.0
    raw_concurrency: int = 64
    celery_warmup_s: float = 5.0
    celery_duration_s: float = 20.0
    latency_warmup_s: float = 5.0
    latency_duration_s: float = 30.0
    fanout_webhooks: int = 100_000
    fanout_accounts: int = 10_000
    fanout_matcher_events: int = 200_000
    fanout_events: int = 100_000
    fanout_max_s: float = 60.0
    workflow_runs: int = 2000
    workflow_seconds: float = 5.0
    registry_rate: float = 500.0
    registry_warmup_s: float = 3.0
    registry_duration_s: float = 20.0
    registry_create_s: float = 10.0
    registry_create_concurrency: int = 8
    scale_deliveries: int = 1_000_000
    scale_events: int = 100_000
    scale_recovery: int = 10_000
    scale_rate: float = 100.0
    scale_warmup_s: float = 3.0
    scale_duration_s: float = 20.0
    soak_rate: float = 100.0
    soak_minutes: float = 10.0
    soak_sample_s: float = 30.0
    broker_rate: float = 1000.0
    broker_duration_s: float = 30.0
    broker_slice_s: float = 10.0


QUICK = Durations(
    warmup_s=3,
    duration_s=5,
    backlog_requests=10_000,
    backlog_max_s=30,
    raw_warmup_s=1,
    raw_duration_s=4,
    celery_warmup_s=2,
    celery_duration_s=5,
    latency_warmup_s=2,
    latency_duration_s=5,
    fanout_webhooks=20_000,
    fanout_accounts=2_000,
    fanout_matcher_events=50_000,
    fanout_events=20_000,
    fanout_max_s=30,
    workflow_runs=300,
    workflow_seconds=2,
    registry_warmup_s=1,
    registry_duration_s=5,
    registry_create_s=3,
    scale_deliveries=100_000,
    scale_events=10_000,
    scale_recovery=2_000,
    scale_warmup_s=1,
    scale_duration_s=5,
    soak_minutes=1,
    soak_sample_s=5,
    broker_duration_s=6,
    broker_slice_s=2,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--part",
        default="all",
        help=f"comma-separated parts to run (default all): {', '.join(PARTS)};"
        f" only when named: {', '.join(ON_REQUEST)}",
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run of every part")
    parser.add_argument("--warmup", type=float, help="warm-up of parts 1 and 5, s (10)")
    parser.add_argument("--duration", type=float, help="measured window of parts 1 and 5, s (30)")
    parser.add_argument("--latency-duration", type=float, help="measured window of part 4, s (30)")
    parser.add_argument("--soak-minutes", type=float, help="length of the soak part, min (10)")
    parser.add_argument(
        "--lead", type=int, help="events published ahead of the receiver in parts 1 and 5 (10000)"
    )
    parser.add_argument(
        "--backlog",
        type=int,
        help="delivery requests waiting for delivery alone, after part 1 (80000)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the services during parts 1, 5 and 6 (.roomhooks/bench/profiles*/)",
    )
    parser.add_argument(
        "--postgres",
        default=LOCAL_POSTGRES,
        help="a database URL on the server where the bench creates (and drops) its database",
    )
    parser.add_argument("--out", type=Path, default=REPO / ".roomhooks" / "bench")
    args = parser.parse_args(argv)
    wanted = PARTS if args.part == "all" else tuple(p.strip() for p in args.part.split(","))
    known = PARTS + ON_REQUEST
    unknown = [p for p in wanted if p not in known]
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    args.parts = [p for p in known if p in wanted]
    base = QUICK if args.quick else Durations()
    overrides = {
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        "latency_duration_s": args.latency_duration,
        "lead": args.lead,
        "backlog_requests": args.backlog,
        "soak_minutes": args.soak_minutes,
    }
    args.durations = Durations(
        **(base.__dict__ | {k: v for k, v in overrides.items() if v is not None})
    )
    return args


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class Bench:
    def __init__(self, args: argparse.Namespace, processes: Processes) -> None:
        self.args = args
        self.d: Durations = args.durations
        self.processes = processes
        self.progress = Progress()
        self.details: dict = {}
        self.stack: Stack | None = None
        self.workload: pipeline.Workload | None = None

    async def run(self) -> dict:
        args = self.args
        started = time.monotonic()
        self.details["machine_speed"] = {"before": machine_speed.reading()}
        try:
            if NEEDS_STACK & set(args.parts):
                self.progress.part("platform")
                self.stack = Stack(args.out, args.postgres, self.processes)
                await self.stack.start(self.progress)
                self.details["postgres"] = self.stack.postgres_settings
                self.workload = await pipeline.create_workload(self.stack)
                self.progress.done(
                    f"ready in {time.monotonic() - started:.0f} s"
                    f" ({len(self.workload.targets)} webhooks over"
                    f" {len(self.workload.accounts)} accounts)"
                )
            for part in args.parts:
                await self._run_part(part)
        finally:
            self.progress.part("stopping")
            self.progress.show("stopping every process", force=True)
            if self.stack is not None:
                await self.stack.stop()
                if self.stack.autovacuum is not None:
                    self.details["autovacuum_stand_in"] = asdict(self.stack.autovacuum.tally)
            else:
                await asyncio.to_thread(self.processes.stop_all)
        self.details["wall_s"] = round(time.monotonic() - started, 1)
        return self.details

    async def _run_part(self, part: str) -> None:
        self.progress.part(part)
        self.details["machine_speed"].setdefault("parts", {})[part] = machine_speed.reading()
        t0 = time.monotonic()
        try:
            await getattr(self, f"part_{part}")()
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - one failed part must not lose the others
            self.details.setdefault(part, {})["error"] = f"{type(exc).__name__}: {exc}"
            self.progress.done(f"FAILED: {type(exc).__name__}: {exc}")
            traceback.print_exc(file=sys.stderr)
            return
        self.progress.done(f"done in {time.monotonic() - t0:.0f} s")

    # --- parts ---------------------------------------------------------------------------

    async def part_delivery(self) -> None:
        result = await self._throughput(
            "clean", profiler=Profiler(self.args.out / "profiles") if self.args.profile else None
        )
        self.details["delivery"] = result
        self.progress.done(f"{result['per_s']:,.0f} deliveries/s")
        assert self.stack is not None and self.workload is not None
        backlog = await delivery_backlog.backlog_run(
            self.stack,
            self.workload,
            requests=self.d.backlog_requests,
            max_s=self.d.backlog_max_s,
            progress=self.progress,
            profiler=Profiler(self.args.out / "profiles-backlog") if self.args.profile else None,
        )
        self.details["delivery_backlog"] = backlog
        self.progress.done(
            f"delivery alone, on a backlog: {backlog['per_s']:,.0f} deliveries/s,"
            f" CPU % {backlog['cpu_percent']}"
        )

    async def part_raw(self) -> None:
        assert self.stack is not None and self.workload is not None
        result = await baselines.raw_run(
            self.stack,
            body=baselines.delivery_body(self.workload.targets[0]),
            secret=next(iter(self.workload.secrets.values())),
            warmup_s=self.d.raw_warmup_s,
            duration_s=self.d.raw_duration_s,
            concurrency=self.d.raw_concurrency,
            progress=self.progress,
        )
        self.details["raw"] = result
        self.progress.done(f"{result['per_s']:,.0f} POSTs/s")

    async def part_celery(self) -> None:
        assert self.stack is not None and self.workload is not None
        self.progress.show("Celery worker on RabbitMQ (tests.bench.celery_baseline)", force=True)
        try:
            result = await baselines.celery_run(
                self.stack,
                body=baselines.delivery_body(self.workload.targets[0]),
                secret=next(iter(self.workload.secrets.values())),
                warmup_s=self.d.celery_warmup_s,
                duration_s=self.d.celery_duration_s,
            )
        except ModuleNotFoundError as exc:
            if exc.name != "tests.bench.celery_baseline":
                raise
            self.details["celery"] = {"error": "tests.bench.celery_baseline is not there yet"}
            self.progress.done("skipped: tests.bench.celery_baseline is not there yet")
            return
        self.details["celery"] = result
        self.progress.done(f"{result['per_s']:,.0f} deliveries/s ({result.get('settings')})")

    async def part_latency(self) -> None:
        assert self.stack is not None and self.workload is not None
        for rate in (200, 1000):
            result = await pipeline.latency_run(
                self.stack,
                self.workload,
                rate=rate,
                warmup_s=self.d.latency_warmup_s,
                duration_s=self.d.latency_duration_s,
                progress=self.progress,
            )
            self.details[f"latency_{rate}"] = result
            if "p50_ms" in result:
                self.progress.done(
                    f"{rate}/s: p50 {result['p50_ms']:.1f} ms, p95 {result['p95_ms']:.1f} ms,"
                    f" p99 {result['p99_ms']:.1f} ms ({result['samples']:,} samples)"
                )
        if report.plot_latency(self.args.out / "latency.png", self.details):
            self.progress.done(f"plot: {self.args.out / 'latency.png'}")

    async def part_hol(self) -> None:
        """Healthy throughput with 10 hanging webhooks, against clean runs made just before
        and just after it: the dev broker's fetches get slower with every batch it has ever
        stored (no retention), so a clean run from minutes earlier would flatter the ratio's
        denominator."""
        assert self.stack is not None and self.workload is not None
        before = await self._throughput("clean, just before")
        await pipeline.add_hanging_webhooks(self.stack, self.workload)
        try:
            result = await self._throughput(
                "with 10 hanging webhooks",
                profiler=Profiler(self.args.out / "profiles-hol") if self.args.profile else None,
            )
        finally:
            self.progress.show("deleting the hanging webhooks; their deliveries ending")
            settled_s = await pipeline.remove_hanging_webhooks(self.stack, self.workload)
        after = await self._throughput("clean, just after")
        hangs = (await self.stack.receiver.stats())["hangs"] if self.stack.receiver else None
        result["hanging_requests_received"] = hangs
        result["hanging_cleanup_s"] = settled_s
        result["clean_before_per_s"] = before["per_s"]
        result["clean_after_per_s"] = after["per_s"]
        result["clean_per_s"] = (before["per_s"] + after["per_s"]) / 2
        self.details["hol"] = result
        self.progress.done(
            f"{result['per_s']:,.0f} healthy deliveries/s"
            f" ({result['per_s'] / result['clean_per_s']:.0%} of the clean runs around it:"
            f" {before['per_s']:,.0f} before, {after['per_s']:,.0f} after)"
        )

    async def _throughput(self, label: str, profiler: Profiler | None = None) -> dict:
        assert self.stack is not None and self.workload is not None
        return await pipeline.throughput_run(
            self.stack,
            self.workload,
            warmup_s=self.d.warmup_s,
            duration_s=self.d.duration_s,
            lead=self.d.lead,
            progress=self.progress,
            label=label,
            profiler=profiler,
        )

    async def part_ordered(self) -> None:
        """Ordered webhooks' deliveries/s, against a clean (unordered) run just before it:
        the dev broker slows down with every batch it stores, so part 1's figure, measured
        minutes earlier, is not the one to compare with."""
        assert self.stack is not None and self.workload is not None
        before = await self._throughput("unordered, just before")
        ordered = await ordered_part.create_ordered_workload(
            self.stack, len(self.workload.targets), self.progress.show
        )
        result = await pipeline.throughput_run(
            self.stack,
            ordered,
            warmup_s=self.d.warmup_s,
            duration_s=self.d.duration_s,
            lead=max(1, self.d.lead // ordered_part.WEBHOOKS_PER_ACCOUNT),
            progress=self.progress,
            label="100 ordered webhooks, 1,000 rooms",
            fanout=ordered_part.WEBHOOKS_PER_ACCOUNT,
        )
        result["unordered_per_s"] = before["per_s"]
        self.details["ordered"] = result
        self.progress.done(
            f"{result['per_s']:,.0f} ordered deliveries/s"
            f" ({result['per_s'] / before['per_s']:.0%} of {before['per_s']:,.0f} unordered"
            " just before)"
        )

    async def part_soak(self) -> None:
        assert self.stack is not None
        d = self.d
        result = await soak_part.soak_run(
            self.stack, rate=d.soak_rate, minutes=d.soak_minutes, sample_s=d.soak_sample_s,
            progress=self.progress,
        )  # fmt: skip
        self.details["soak"] = result
        growth = result["growth_mb_per_min"]
        self.progress.done(
            f"{result['published']:,} events in {d.soak_minutes:g} min; RSS growth over the"
            " second half, MB/min: "
            + ", ".join(f"{n} {g:+.2f}" for n, g in growth.items() if g is not None)
        )

    async def part_fanout(self) -> None:
        assert self.stack is not None
        self.progress.show(f"matcher: {self.d.fanout_webhooks:,} webhooks", force=True)
        matcher = await fanout_part.matcher_run(
            self.stack,
            webhooks=self.d.fanout_webhooks,
            accounts=self.d.fanout_accounts,
            events=self.d.fanout_matcher_events,
        )
        self.details["fanout_matcher"] = matcher
        self.progress.done(
            f"matcher: {matcher['matched_events_per_s']:,.0f} matched events/s,"
            f" route() {matcher['route_events_per_s']:,.0f} events/s"
        )
        for replicas, key in ((1, "fanout_service"), (2, "fanout_service_2_replicas")):
            service = await fanout_part.service_run(
                self.stack,
                webhooks=self.d.fanout_webhooks,
                accounts=self.d.fanout_accounts,
                events=self.d.fanout_events,
                max_s=self.d.fanout_max_s,
                progress=self.progress,
                replicas=replicas,
                profiler=Profiler(self.args.out / "profiles-fanout", rate_hz=fanout_part.PROFILE_HZ)
                if self.args.profile and replicas == 1
                else None,
            )
            self.details[key] = service
            self.progress.done(
                f"service, {replicas} replica(s): {service['events_per_s']:,.0f} events/s,"
                f" RSS {service['rss_mb']:.0f} MB, CPU % {service['cpu_percent_by_process']}"
            )

    async def part_workflows(self) -> None:
        out = self.args.out / "logs" / "workflow_sandbox.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)
        child = self.processes.start(
            "workflow_sandbox",
            python_module(
                "tests.bench.workflow_sandbox",
                f"--runs={self.d.workflow_runs}",
                f"--seconds={self.d.workflow_seconds}",
                f"--json-out={out}",
            ),
            _clean_env(),
        )
        self.progress.show("Deno sandbox: cold starts, warm runs, throughput", force=True)
        code = await asyncio.to_thread(child.proc.wait)  # type: ignore[union-attr]
        if code != 0:
            raise RuntimeError(f"workflow_sandbox exited with {code}:\n{child.log_tail()}")
        import json

        result = json.loads(out.read_text())
        self.details["workflows"] = result
        self.progress.done(
            f"{result['exec_per_s']:,.0f} executions/s, p50 {result['warm_p50_ms']:.2f} ms,"
            f" cold {result['cold_p50_ms']:.1f} ms"
        )

    async def part_registry(self) -> None:
        assert self.stack is not None
        created = await registry_part.create_run(
            self.stack,
            duration_s=self.d.registry_create_s,
            concurrency=self.d.registry_create_concurrency,
            progress=self.progress,
        )
        account = created.pop("account")
        self.details["registry_create"] = created
        self.progress.done(f"POST create: {created['per_s']:,.0f}/s")
        listed = await registry_part.list_run(
            self.stack,
            account.id,
            account.auth,
            rate=self.d.registry_rate,
            warmup_s=self.d.registry_warmup_s,
            duration_s=self.d.registry_duration_s,
            progress=self.progress,
        )
        listed["webhooks_in_account"] = created["created"]
        self.details["registry_get"] = listed
        if "p99_ms" in listed:
            self.progress.done(
                f"GET list at {listed['rate']:,.0f}/s: p50 {listed['p50_ms']:.1f} ms,"
                f" p99 {listed['p99_ms']:.1f} ms"
            )

    async def part_broker(self) -> None:
        """The dev broker alone, fresh for each case: what storing and reading costs it."""
        load = broker_part.Load(
            partitions=PARTITIONS,
            rate=self.d.broker_rate,
            duration_s=self.d.broker_duration_s,
            slice_s=self.d.broker_slice_s,
        )
        result = await broker_part.broker_run(self.processes, load, progress=self.progress)
        self.details["broker"] = result
        for case, found in result["cases"].items():
            self.progress.done(f"{case}: the broker at {found['broker_cpu_percent']} % of a core")

    async def part_scale(self) -> None:
        """One account with a million deliveries and 100,000 events: its logs read at a fixed
        rate, then a recovery of failed deliveries beside the healthy load."""
        assert self.stack is not None
        d = self.d
        scale, seeded = await scale_part.seed(
            self.stack,
            deliveries=d.scale_deliveries,
            events=d.scale_events,
            recovery_failed=d.scale_recovery,
            progress=self.progress,
        )
        self.details["scale_seed"] = seeded
        self.progress.done(
            f"seeded {seeded['deliveries']:,} deliveries, {seeded['events']:,} events"
            f" in {seeded['seed_s']:.0f} s"
        )
        reads = await scale_part.reads(
            self.stack,
            scale,
            rate=d.scale_rate,
            warmup_s=d.scale_warmup_s,
            duration_s=d.scale_duration_s,
            progress=self.progress,
        )
        self.details["scale_reads"] = reads
        for name, read in reads.items():
            if "p99_ms" in read:
                self.progress.done(
                    f"GET {name} at {read['rate']:,.0f}/s: p50 {read['p50_ms']:.1f} ms,"
                    f" p99 {read['p99_ms']:.1f} ms"
                )
        recovery = await scale_part.recovery_under_load(
            self.stack, scale, self._throughput, warmup_s=d.warmup_s, progress=self.progress
        )
        self.details["scale_recovery"] = recovery
        self.progress.done(
            f"recovered {recovery['recovery_done']:,} in {recovery['recovery_s']:.0f} s;"
            f" healthy {recovery['per_s']:,.0f}/s, {recovery['kept_fraction']:.0%} of clean"
        )
        retention = await scale_retention.measure(
            self.stack.database_url,
            deliveries=d.scale_deliveries,
            retention_days=PostgresSettings.model_fields["retention_days"].default,
            progress=self.progress,
        )
        self.details["scale_retention"] = retention
        self.progress.done(
            f"retention removed a day of {retention['deliveries']:,} deliveries and"
            f" {retention['attempts']:,} attempts in {retention['seconds']} s"
        )


def _clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ROOMHOOKS_", "KAFKA_")) and k != "DATABASE_URL"
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The bench's own library logs (migrations, accounts) would break the progress line.
    configure_logging(RuntimeSettings(log_level="WARNING"), service="bench")
    out: Path = args.out
    (out / "logs").mkdir(parents=True, exist_ok=True)
    for old in (out / "logs").glob("*.log"):
        old.unlink()
    processes = Processes(out / "logs")
    bench = Bench(args, processes)
    code = 0
    try:
        details = asyncio.run(_run_with_signals(bench))
    except KeyboardInterrupt:
        print("\ninterrupted: every process stopped", file=sys.stderr)
        details, code = bench.details, 130
    finally:
        processes.stop_all()  # already done unless a second Ctrl-C cut the clean-up short
        _drop_leftover_database(bench)
    details["parts"] = args.parts
    details["quick"] = args.quick
    result = report.results(details, cores=os.cpu_count() or 0, commit=git_commit())
    print()
    print(report.table(result, details))
    if code:  # an interrupted run does not replace the last complete one's files
        print(f"\nnot written (interrupted); logs: {out / 'logs'}")
        return code
    report.write(out, result, details)
    for part in ("delivery", "delivery_backlog", "hol", "fanout_service"):
        profile = (details.get(part) or {}).get("profile")
        if profile:
            print(f"\nprofile of part {part}:")
            print(report.profile_table(profile))
    print(f"\n{out / 'results.json'}  {out / 'details.json'}  logs: {out / 'logs'}")
    return code


async def _run_with_signals(bench: Bench) -> dict:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    assert task is not None
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await bench.run()
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def _drop_leftover_database(bench: Bench) -> None:
    stack = bench.stack
    if stack is None or not stack.database_name or stack.database_dropped:
        return
    with contextlib.suppress(Exception):
        asyncio.run(drop_database(stack.server_url, stack.database_name))
