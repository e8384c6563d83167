"""The `ordered` scenario of `make chaos`: webhooks with `ordering: "room"` under load while
fanout and then delivery are SIGKILLed and restarted, two of them on endpoints that fail
every first attempt.

Beside the pipeline checks (nothing lost, `success` in Postgres, repeats with one
`webhook-id`), every room's deliveries must reach its endpoint in publish order: an attempt
and its retries, or a repeat after a kill, may come more than once, but never after a later
event of the room has come.
"""

from __future__ import annotations

from shared.messages import delivery_id_for
from tests.chaos.outcome import ScenarioOutcome
from tests.chaos.pipeline_faults import Setup, account
from tests.chaos.platform import ChaosRun, Fault


def out_of_order(run: ChaosRun, events: int) -> tuple[int, int]:
    """How many arrivals came after a later event of their room (webhook), and how many
    arrivals were checked."""
    position: dict[str, tuple[str, int]] = {}
    for n in range(events):
        hook = run.hooks[n % len(run.hooks)]
        position[delivery_id_for(hook.webhook_id, f"chaos-{run.name}-{n}")] = (hook.webhook_id, n)
    latest: dict[str, int] = {}
    late = 0
    for receipt in run.receipts:
        found = position.get(receipt.delivery_id)
        if found is None:
            continue
        room, n = found
        if n < latest.get(room, -1):
            late += 1
        latest[room] = max(n, latest.get(room, -1))
    return late, len(run.receipts)


async def ordered(setup: Setup, *, short: bool) -> ScenarioOutcome:
    """20 ordered webhooks, one room each (2 of them flaky); fanout killed at 30 % of the load
    and delivery at 50 %, each restarted; every room's sequence checked."""
    outcome = ScenarioOutcome("ordered delivery")
    # A flaky room waits out a retry (1 s) per event: its share of the load sets the run's end.
    events, rate = (800, 50.0) if short else (3_000, 120.0)
    plan = [(0.3, "fanout"), (0.5, "delivery")]
    async with setup.run("ordered") as run:
        await run.add_webhooks(accounts=2, per_account=10, flaky_every=10, ordering="room")
        faults = [
            Fault(at, f"SIGKILL {name}", run.kill_and_restart(name), name) for at, name in plan
        ]
        await run.run_load(events=events, rate=rate, faults=faults)
        settled, succeeded = await run.settle(timeout_s=60.0 + events / 20 * 1.5)
        account(outcome, run, settled, succeeded)
    late, checked = out_of_order(run, events)
    outcome.details |= {"arrivals_checked": checked, "arrivals_out_of_order": late}
    outcome.check(late == 0, f"{late} deliveries reached their room after a later event of it")
    outcome.check(len(run.faults) == len(plan), f"{len(run.faults)}/{len(plan)} faults ran")
    return outcome
