"""The postgres and broker scenarios of `make chaos`: Postgres and the broker restart under load,
and the services carry on by themselves (the same processes), losing nothing.

Postgres is a throwaway server of the scenario's own (never the machine's shared cluster,
which other work may be using), stopped with a fast shutdown and started again on its port,
as an operator's restart does. The dev broker keeps everything in memory: a restart loses
what it held, so the stack that restarted it creates the topics again and has the registry
announce every subscription again, as `make run` does. Events it still held when it went down
are gone with it (real Kafka keeps them); the broker scenario therefore checks the events
delivered before the restart and every event published after it.
"""

from __future__ import annotations

import asyncio
import time

from devtool.postgres import reannounce_registry
from shared.kafka import ensure_topics
from tests.chaos.outcome import ScenarioOutcome
from tests.chaos.pipeline_faults import Setup, account
from tests.chaos.platform import Fault, FaultLog
from tests.support.servers import ThrowawayPostgres

# Services reconnect by themselves within this long.
RECONNECT_LIMIT_S = 10.0


async def postgres_restart(setup: Setup, *, short: bool) -> ScenarioOutcome:
    """Stop the platform's Postgres mid-run for a few seconds, then start it again."""
    outcome = ScenarioOutcome("postgres restart")
    events, rate = (900, 60.0) if short else (6_000, 200.0)
    down_s = 3.0 if short else 8.0
    server = await asyncio.to_thread(ThrowawayPostgres)
    await asyncio.to_thread(server.start)
    try:
        run = Setup(setup.state_dir, server.url, setup.progress).run("postgres")
        async with run:
            await run.add_webhooks(accounts=4, per_account=5)
            pids = run.stack.pids()

            async def restart() -> float | None:
                await asyncio.to_thread(server.stop)
                await asyncio.sleep(down_s)
                await asyncio.to_thread(server.start)
                return await run.all_ready(timeout_s=60)

            await run.run_load(
                events=events,
                rate=rate,
                faults=[Fault(0.4, f"Postgres down {down_s:.0f} s", restart)],
            )
            settled, succeeded = await run.settle()
            account(outcome, run, settled, succeeded)
            restarted = sorted(n for n, pid in pids.items() if run.stack.pids().get(n) != pid)
    finally:
        await asyncio.to_thread(server.remove)
    outcome.details["restarted"] = restarted
    outcome.check(not restarted, f"processes restarted: {', '.join(restarted)}")
    ready = outcome.recovery_s
    outcome.check(
        ready is not None and ready <= RECONNECT_LIMIT_S,
        f"services were ready {ready} s after Postgres came back (limit {RECONNECT_LIMIT_S} s)",
    )
    return outcome


async def broker_restart(setup: Setup, *, short: bool) -> ScenarioOutcome:
    """Deliver a first load, kill and restart the broker (empty), deliver a second load."""
    outcome = ScenarioOutcome("broker restart")
    events, rate = (600, 100.0) if short else (5_000, 250.0)
    async with setup.run("broker") as run:
        await run.add_webhooks(accounts=4, per_account=5)
        pids = run.stack.pids()
        del pids["broker"]
        await run.run_load(events=events, rate=rate)
        before = await run.wait_for_success()
        outcome.check(before == events, f"{events - before} events before the restart undelivered")

        setup.progress("fault: broker killed and started again, empty")
        killed_at = time.monotonic()
        run.stack.kill("broker")
        await run.stack.restart("broker")
        await ensure_topics(run.stack.kafka_settings())
        await reannounce_registry(run.stack.database_url, run.topics)
        ready = await run.all_ready(timeout_s=60)
        recovery = None if ready is None else round(time.monotonic() - killed_at, 2)
        run.faults.append(
            FaultLog(
                "broker killed, restarted empty", round(killed_at - run.load_started, 2), recovery
            )
        )

        await run.run_load(events=events, rate=rate)
        settled, succeeded = await run.settle()
        account(outcome, run, settled, succeeded)
        restarted = sorted(n for n, pid in pids.items() if run.stack.pids().get(n) != pid)
    outcome.details |= {"restarted": restarted, "published_after_restart": events}
    outcome.check(not restarted, f"processes restarted: {', '.join(restarted)}")
    outcome.check(
        recovery is not None and recovery <= RECONNECT_LIMIT_S,
        f"services were ready {recovery} s after the broker's kill (limit {RECONNECT_LIMIT_S} s)",
    )
    return outcome
