"""The crashes, replicas and poison scenarios of `make chaos`: process crashes, two delivery
replicas, poison input.

Each builds its own platform (`ChaosRun`), sends a steady load of events to the receiver while
the fault happens, and checks every (webhook, event) pair: it reached the receiver at least
once, Postgres holds it as `success`, and every repeat carried the same `webhook-id`.
`short=True` is the version `make test` runs: fewer events, fewer faults, same checks.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaProducer

from tests.bench.stack import PARTITIONS
from tests.chaos.ledger import Settled
from tests.chaos.outcome import ScenarioOutcome
from tests.chaos.platform import ChaosRun, Fault, Progress
from tests.chaos.poison import PoisonBatch, read_dead_letters


@dataclass(frozen=True)
class Setup:
    """Where a scenario runs: its own state folder and a Postgres server it may create
    databases on."""

    state_dir: Path
    server_url: str
    progress: Progress

    def run(self, name: str, *, partitions: int = PARTITIONS, **settings: str) -> ChaosRun:
        return ChaosRun(
            name, self.state_dir, self.server_url, self.progress, settings, partitions=partitions
        )


def account(outcome: ScenarioOutcome, run: ChaosRun, settled: Settled, succeeded: int) -> None:
    """The checks every pipeline scenario makes, and the counts of its row."""
    outcome.sent = settled.expected
    outcome.delivered = settled.delivered
    outcome.lost = settled.lost
    outcome.duplicated = settled.duplicated
    outcome.details |= {
        "success_in_postgres": succeeded,
        "requests_received": len(run.receipts),
        "webhook_id_mismatches": run.id_mismatches,
        "unexpected_requests": settled.unexpected,
        "longest_silence_s": run.longest_silence_s(),
        "faults": [f.__dict__ for f in run.faults],
    }
    outcome.check(settled.lost == 0, f"{settled.lost} expected deliveries never arrived")
    outcome.check(
        succeeded == settled.expected,
        f"{settled.expected - succeeded} expected deliveries are not `success` in Postgres",
    )
    outcome.check(run.id_mismatches == 0, f"{run.id_mismatches} requests changed their webhook-id")
    outcome.check(settled.unexpected == 0, f"{settled.unexpected} requests nobody published")
    recoveries = [f.recovery_s for f in run.faults if f.recovery_s is not None]
    outcome.recovery_s = max(recoveries, default=None)


# --- 1. crashes ----------------------------------------------------------------------------


async def crashes(setup: Setup, *, short: bool) -> ScenarioOutcome:
    """SIGKILL delivery 5 times, fanout 3 times and the registry once during a 20,000-event
    run, restarting each as the supervisor would (short: 2, 1, 1 during 1,500 events)."""
    outcome = ScenarioOutcome("crashes")
    # A killed consumer is back after about 13 s on the dev broker (its group waits out the
    # dead member's session), so the load lasts long enough for every kill to land in it.
    events, rate = (1_500, 60.0) if short else (20_000, 250.0)
    plan = (
        [(0.15, "delivery"), (0.4, "fanout"), (0.5, "registry"), (0.7, "delivery")]
        if short
        else [
            (0.08, "delivery"),
            (0.16, "fanout"),
            (0.25, "delivery"),
            (0.42, "delivery"),
            (0.45, "fanout"),
            (0.5, "registry"),
            (0.6, "delivery"),
            (0.75, "fanout"),
            (0.8, "delivery"),
        ]
    )
    async with setup.run("crashes") as run:
        await run.add_webhooks(accounts=4, per_account=5)
        faults = [
            Fault(at, f"SIGKILL {name}", run.kill_and_restart(name), name) for at, name in plan
        ]
        await run.run_load(events=events, rate=rate, faults=faults)
        settled, succeeded = await run.settle()
        account(outcome, run, settled, succeeded)
    outcome.check(len(run.faults) == len(plan), f"{len(run.faults)}/{len(plan)} faults ran")
    return outcome


# --- 2. two delivery replicas --------------------------------------------------------------


async def replicas(setup: Setup, *, short: bool) -> ScenarioOutcome:
    """Two delivery processes in one group, a third of the endpoints failing every first
    attempt (so retries go through both schedulers); one replica killed for good mid-run.
    Nothing lost, and before the kill no retry reached the receiver twice."""
    outcome = ScenarioOutcome("two delivery replicas")
    events, rate = (1_200, 150.0) if short else (10_000, 400.0)
    killed_at: list[float] = []
    # Three partitions per topic, as the replicas share them (`make run` makes one).
    async with setup.run("replicas", partitions=3) as run:
        await run.stack.add_delivery_replica("delivery-2")
        await run.add_webhooks(accounts=4, per_account=6, flaky_every=3)

        async def kill_second() -> None:
            metrics = await run.stack.metrics("delivery-2")
            outcome.details["attempts_by_killed_replica"] = sum(
                v for k, v in metrics.items() if k.startswith("roomhooks_delivery_attempts_total{")
            )
            killed_at.append(time.time())
            run.stack.kill("delivery-2")

        await run.run_load(
            events=events, rate=rate, faults=[Fault(0.5, "SIGKILL delivery-2", kill_second)]
        )
        settled, succeeded = await run.settle()
        account(outcome, run, settled, succeeded)
    before_kill = [r for r in run.receipts if killed_at and r.received_at < killed_at[0]]
    retries = [(r.delivery_id, r.attempt) for r in before_kill if r.attempt >= 2]
    twice = len(retries) - len(set(retries))
    outcome.details |= {"retries_before_kill": len(retries), "retries_sent_twice": twice}
    outcome.check(twice == 0, f"{twice} retries were sent twice by the two schedulers")
    outcome.check(
        outcome.details.get("attempts_by_killed_replica", 0) > 0,
        "the second replica made no attempt before it was killed: nothing was tested",
    )
    outcome.check(len(retries) > 0, "no retry happened before the kill: nothing was tested")
    return outcome


# --- 5. poison input -----------------------------------------------------------------------


async def poison(setup: Setup, *, short: bool) -> ScenarioOutcome:
    """Malformed messages interleaved with good events on `<ns>.events` (and a few malformed
    requests on `<ns>.deliveries`): each bad event in the DLQ with its reason, every good
    one delivered, no process restarted."""
    outcome = ScenarioOutcome("poison input")
    good, bad = (600, 600) if short else (10_000, 10_000)
    rate = 150.0 if short else 400.0
    async with setup.run("poison") as run:
        await run.add_webhooks(accounts=4, per_account=5)
        pids = run.stack.pids()
        batch = PoisonBatch(bad, oversize_every=100 if short else 500)
        producer = AIOKafkaProducer(
            bootstrap_servers=run.stack.bootstrap, max_request_size=2 * 1024 * 1024, linger_ms=5
        )
        await producer.start()
        try:

            async def bad_alongside() -> None:
                # The same pace as the good events: the two streams interleave on every
                # partition.
                await batch.publish(
                    producer, run.topics, rate=rate * bad / good, progress=setup.progress
                )

            sender = asyncio.create_task(bad_alongside())
            await run.run_load(events=good, rate=rate)
            await sender
        finally:
            await producer.stop()
        settled, succeeded = await run.settle()
        account(outcome, run, settled, succeeded)
        letters = await read_dead_letters(
            run.stack.kafka_settings(), run.topics, wanted=len(batch.expected)
        )
        restarted = sorted(n for n, pid in pids.items() if run.stack.pids().get(n) != pid)
    verdict = batch.judge(letters)
    # The row counts bad messages too: one that reached the DLQ arrived where it should.
    outcome.sent += verdict.expected
    outcome.delivered += verdict.found
    outcome.lost += verdict.missing
    outcome.details["bad_delivery_requests"] = batch.bad_requests
    outcome.details |= {"dead_letters": verdict.as_json(), "restarted": restarted}
    outcome.failures.extend(verdict.failures)
    outcome.check(not restarted, f"processes restarted: {', '.join(restarted)}")
    return outcome
