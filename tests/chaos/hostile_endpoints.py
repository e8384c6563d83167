"""The hostile-endpoints scenario of `make chaos`: hostile endpoints beside healthy ones, under a
steady load.

One webhook per hostile kind (tests/support/hostile_endpoints.py: NUL and non-UTF-8 bodies,
gzip, huge, endless and trickling bodies, over-long headers and status lines, a malformed
`Retry-After` or `Location`, a reset mid-answer, bytes that are not HTTP, a TLS error), each
with a short retry schedule of its own, and nine healthy webhooks for each: 10 % of the
webhooks are hostile, each getting a few events spread over the load (Plan.per_hostile).
Every healthy (webhook, event) pair must reach the receiver and be `success`; every hostile
delivery must end in a final, recorded state (the kind's expected status, one attempt row per
attempt, a reason when it failed) within its schedule (`judge_hostile`); no process may
restart.

In full, a clean phase (the same webhooks, healthy events only) runs just before the hostile
one at the same healthy rate; each phase's healthy deliveries/s (pairs received over the time
from its first publish to the last of them arriving) and their ratio are reported, the ratio
held to at least RATIO_TARGET. The short version (`make test`) checks correctness only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any

import aiohttp

from shared.messages import delivery_id_for
from tests.bench.load import EventPublisher, Target
from tests.bench.pipeline import wait_for_index
from tests.bench.stack import Account, Stack, StackError
from tests.chaos.ledger import Receipt
from tests.chaos.outcome import ScenarioOutcome
from tests.chaos.pipeline_faults import Setup, account
from tests.chaos.platform import CHAOS_SETTINGS, ChaosRun, Hook
from tests.support.hostile_endpoints import KINDS, SUCCEEDING, HostileEndpoints

NAME = "hostile endpoints"
RATIO_TARGET = 0.9
# Retries 1 s and 1 s after the first two attempts: three attempts, then the delivery ends.
HOSTILE_SCHEDULE = (1, 1)
HEALTHY_PER_HOSTILE = 9  # 10 % of the webhooks hostile
# An attempt's span: the delivery's timeout, plus its read and record.
ATTEMPT_S = float(CHAOS_SETTINGS["ROOMHOOKS_DELIVERY_TIMEOUT_S"]) + 2.0
# Beyond the schedule and the attempts: the scheduler's poll, claims, records.
SCHEDULE_SLACK_S = 15.0
FINAL = ("success", "failed")


@dataclass(frozen=True)
class Plan:
    events: int  # healthy events per phase
    rate: float  # healthy events/s
    per_hostile: int  # events for each hostile webhook in the hostile phase
    clean_phase: bool  # measure a clean phase first (the ratio)


# A hostile webhook's deliveries run one at a time once it times out (lanes.py): a trickling
# endpoint costs (attempts x timeout) per event, so its share of the events is kept small.
SHORT = Plan(events=600, rate=150.0, per_hostile=2, clean_phase=False)
FULL = Plan(events=9_000, rate=500.0, per_hostile=6, clean_phase=True)


@dataclass(frozen=True)
class HostileHook:
    webhook_id: str
    target: Target
    kind: str


@dataclass
class Phase:
    name: str
    healthy: set[str] = field(default_factory=set)  # delivery ids
    hostile: dict[str, str] = field(default_factory=dict)  # delivery id -> kind
    started_at: float = 0.0  # Unix s, the first publish

    def rate(self, receipts: Iterable[Receipt]) -> tuple[int, float]:
        """(healthy pairs received, healthy deliveries/s from the first publish to the last
        pair's first receipt)."""
        first: dict[str, float] = {}
        for r in receipts:
            if r.delivery_id in self.healthy:
                first[r.delivery_id] = min(first.get(r.delivery_id, r.received_at), r.received_at)
        if not first:
            return 0, 0.0
        span = max(first.values()) - self.started_at
        return len(first), len(first) / span if span > 0 else 0.0


async def run(setup: Setup, *, short: bool) -> ScenarioOutcome:
    plan = SHORT if short else FULL
    outcome = ScenarioOutcome(
        NAME,
        details={"plan": vars(plan), "kinds": list(KINDS), "schedule": list(HOSTILE_SCHEDULE)},
    )
    async with HostileEndpoints() as endpoints, setup.run("hostile-endpoints") as chaos:
        healthy, hostile = await _webhooks(chaos, endpoints)
        pids = chaos.stack.pids()
        rates: dict[str, float] = {}
        phases = [PhaseLoad("clean", healthy, [])] if plan.clean_phase else []
        phases.append(PhaseLoad("hostile", healthy, hostile))
        for phase in phases:
            setup.progress(f"{phase.name} phase: {plan.events:,} healthy events")
            done = await phase.run(chaos, plan)
            received, rate = done.rate(chaos.receipts)
            rates[phase.name] = round(rate, 1)
            outcome.details[f"{phase.name}_healthy_received"] = received
        hostile_ids = {d: k for p in phases for d, k in p.done.hostile.items()}
        settled = chaos.ledger.settle(chaos.receipts)
        succeeded = await chaos.wait_for_success(timeout_s=5)
        account(outcome, chaos, settled, succeeded)
        setup.progress(f"waiting for {len(hostile_ids):,} hostile deliveries to end")
        rows = await _hostile_rows(
            chaos, hostile_ids, timeout_s=lane_bound_s(plan.per_hostile, HOSTILE_SCHEDULE)
        )
        restarted = sorted(n for n, pid in pids.items() if chaos.stack.pids().get(n) != pid)
        ready_s = await chaos.all_ready(timeout_s=10)
        hits = dict(endpoints.hits)
    verdict = judge_hostile(hostile_ids, rows, schedule=HOSTILE_SCHEDULE)
    outcome.sent += len(hostile_ids)
    outcome.delivered += verdict.final
    outcome.lost += len(hostile_ids) - verdict.final
    outcome.details |= {
        "healthy_deliveries_per_s": rates,
        "hostile": verdict.as_json(),
        "hits": hits,
        "restarted": restarted,
        "ready_after_s": ready_s,
    }
    outcome.failures.extend(verdict.failures)
    unhit = [k for k in KINDS if not hits.get(k)]
    outcome.check(not unhit, f"hostile endpoints never reached: {unhit} (nothing was tested)")
    outcome.check(not restarted, f"processes restarted: {', '.join(restarted)}")
    if plan.clean_phase:
        ratio = rates["hostile"] / rates["clean"] if rates.get("clean") else 0.0
        outcome.details["ratio"] = round(ratio, 3)
        outcome.check(
            ratio >= RATIO_TARGET,
            f"healthy deliveries/s beside hostile endpoints were {ratio:.2f}x a clean run's"
            f" ({rates}; at least {RATIO_TARGET}x)",
        )
    return outcome


# --- the workload ---------------------------------------------------------------------------


async def _webhooks(
    chaos: ChaosRun, endpoints: HostileEndpoints
) -> tuple[list[Target], list[HostileHook]]:
    """One account per hostile kind, with that kind's webhook and nine healthy ones."""
    receiver = chaos.stack.receiver
    assert receiver is not None
    healthy: list[Target] = []
    hostile: list[HostileHook] = []
    for a, kind in enumerate(KINDS):
        owner = await chaos.stack.create_account(f"chaos-hostile-endpoints-{a}")
        for w in range(HEALTHY_PER_HOSTILE):
            room = f"room-{a}-{w}"
            webhook = await create_webhook(
                chaos.stack,
                owner,
                {
                    "url": receiver.hook_url(f"a{a}w{w}"),
                    "events": ["participant.joined"],
                    "roomId": room,
                },
            )
            target = Target(owner.id, room)
            healthy.append(target)
            chaos.hooks.append(Hook(webhook["id"], target, flaky=False))
        room = f"room-{a}-{kind}"
        webhook = await create_webhook(
            chaos.stack,
            owner,
            {
                "url": endpoints.url(kind),
                "events": ["participant.joined"],
                "roomId": room,
                "retrySchedule": list(HOSTILE_SCHEDULE),
            },
        )
        hostile.append(HostileHook(webhook["id"], Target(owner.id, room, healthy=False), kind))
    await wait_for_index(chaos.stack, len(healthy) + len(hostile))
    return healthy, hostile


async def create_webhook(stack: Stack, owner: Account, body: dict[str, Any]) -> dict[str, Any]:
    """POST a webhook through the API, waiting out a 429 (the per-key rate limit) as a
    well-behaved client does."""
    assert stack.session is not None
    url = f"{stack.api_url}/v1/accounts/{owner.id}/webhooks"
    for _ in range(20):
        async with stack.session.post(url, json=body, headers=owner.auth) as response:
            answer = await response.json(content_type=None)
            if response.status == 201:
                return answer["data"]["webhook"]
            if response.status != 429:
                raise StackError(f"creating a webhook answered {response.status}: {answer}")
            await asyncio.sleep(min(5.0, _retry_after(response)))
    raise StackError("creating a webhook: still rate limited after 20 tries")


def _retry_after(response: aiohttp.ClientResponse) -> float:
    try:
        return max(0.1, float(response.headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0


class PhaseLoad:
    """Publishes one phase's events: healthy ones round-robin over the healthy webhooks at
    `plan.rate`/s, and, spread evenly among them, `plan.per_hostile` events for each hostile
    webhook (none in the clean phase)."""

    def __init__(self, name: str, healthy: list[Target], hostile: list[HostileHook]) -> None:
        self.name = name
        self.healthy = healthy
        self.hostile = hostile
        self.done = Phase(name)

    async def run(self, chaos: ChaosRun, plan: Plan) -> Phase:
        receiver = chaos.stack.receiver
        assert receiver is not None
        await receiver.track_start()
        webhook_of = {h.target: h.webhook_id for h in chaos.hooks}
        hostile_total = plan.per_hostile * len(self.hostile)
        started = time.monotonic()
        self.done.started_at = time.time()
        healthy_sent = hostile_sent = 0
        acks: list[asyncio.Future] = []
        async with EventPublisher(chaos.stack.kafka_settings(), chaos.topics.events) as out:

            async def send(target: Target, webhook_id: str, hostile: HostileHook | None) -> None:
                event_id = f"chaos-hostile-endpoints-{self.name}-{healthy_sent + hostile_sent}"
                delivery_id = delivery_id_for(webhook_id, event_id)
                if hostile is None:
                    chaos.ledger.expect(delivery_id)
                    self.done.healthy.add(delivery_id)
                else:
                    self.done.hostile[delivery_id] = hostile.kind
                acks.append(await out.send(target, event_id=event_id))

            while healthy_sent < plan.events:
                due = min(plan.events, int((time.monotonic() - started) * plan.rate) + 1)
                while healthy_sent < due:
                    target = self.healthy[healthy_sent % len(self.healthy)]
                    await send(target, webhook_of[target], None)
                    healthy_sent += 1
                    while hostile_sent < hostile_total * healthy_sent // plan.events:
                        hook = self.hostile[hostile_sent % len(self.hostile)]
                        await send(hook.target, hook.webhook_id, hook)
                        hostile_sent += 1
                if len(acks) >= 500:
                    await asyncio.gather(*acks)
                    acks.clear()
                await asyncio.sleep(0.005)
            await asyncio.gather(*acks)
        await chaos.wait_for_success()
        _now, tracked = await receiver.track_stop()
        chaos.receipts += [
            Receipt(d, a, at)
            for d, a, at in zip(
                tracked.delivery_ids, tracked.attempts, tracked.received_at, strict=True
            )
        ]
        chaos.id_mismatches += tracked.id_mismatches
        return self.done


# --- the hostile deliveries -----------------------------------------------------------------

_ROWS = """
SELECT d.id::text AS id, d.status, d.attempts, d.status_code, d.last_error,
       count(a.attempt) AS attempt_rows, min(a.started_at) AS first_started,
       max(a.started_at + a.duration_ms * interval '1 millisecond') AS last_ended,
       array_agg(round(extract(epoch FROM a.started_at - d.created_at)::numeric, 3)
                 ORDER BY a.attempt) AS started_s,
       array_agg(a.duration_ms ORDER BY a.attempt) AS durations_ms
FROM delivery.deliveries d LEFT JOIN delivery.delivery_attempts a
     ON a.delivery_id = d.id AND a.delivery_created_at = d.created_at
WHERE d.id = ANY($1::uuid[])
GROUP BY d.id, d.created_at
"""


async def _hostile_rows(
    chaos: ChaosRun, hostile: dict[str, str], *, timeout_s: float
) -> dict[str, dict[str, Any]]:
    """Each hostile delivery's row and attempts, once all are final (or after `timeout_s`)."""
    assert chaos.stack.pool is not None
    deadline = time.monotonic() + timeout_s
    while True:
        records = await chaos.stack.pool.fetch(_ROWS, list(hostile))
        rows = {r["id"]: dict(r) for r in records}
        final = sum(1 for r in rows.values() if r["status"] in FINAL)
        chaos.progress(f"hostile deliveries: {final:,}/{len(hostile):,} final")
        if final == len(hostile) or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(1.0)


@dataclass
class HostileVerdict:
    expected: int
    final: int = 0
    by_kind: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"expected": self.expected, "final": self.final, "by_kind": self.by_kind}


def lane_bound_s(deliveries: int, schedule: Sequence[float]) -> float:
    """The longest one webhook's `deliveries` may take, from the first attempt's start to the
    last one's end, when each makes every attempt its schedule allows and they run one at a
    time (as delivery runs them for an endpoint that times out): attempts, the schedule's steps
    with jitter, and the slack."""
    attempts = deliveries * (len(schedule) + 1)
    return attempts * ATTEMPT_S + sum(schedule) * 1.2 + SCHEDULE_SLACK_S


def judge_hostile(
    hostile: dict[str, str], rows: dict[str, dict[str, Any]], *, schedule: Sequence[float]
) -> HostileVerdict:
    """Pure: every hostile delivery (id -> kind) against its row (`_ROWS`). Within its
    schedule: no more attempts than it allows, none earlier than its step (less the jitter),
    and the kind's deliveries all over within `lane_bound_s`."""
    verdict = HostileVerdict(expected=len(hostile))
    problems: dict[str, list[str]] = {}
    spans: dict[str, list[datetime]] = {}
    for delivery_id, kind in hostile.items():
        row = rows.get(delivery_id)
        seen = verdict.by_kind.setdefault(
            kind, {"deliveries": 0, "statuses": {}, "span_s": 0.0, "sample": None}
        )
        seen["deliveries"] += 1
        wrong = problems.setdefault(kind, [])
        if row is None:
            wrong.append("no delivery row")
            continue
        status = row["status"]
        seen["statuses"][status] = seen["statuses"].get(status, 0) + 1
        starts = [float(a) for a in row["started_s"] or [] if a is not None]
        if seen["sample"] is None or status != "pending":
            seen["sample"] = {
                "status": status,
                "attempts": row["attempts"],
                "status_code": row["status_code"],
                "last_error": (row["last_error"] or "")[:160],
                "attempts_at_s": starts,
            }
        if status not in FINAL:
            wrong.append(f"still {status} after {row['attempts']} attempts")
            continue
        verdict.final += 1
        expected = "success" if kind in SUCCEEDING else "failed"
        if status != expected:
            wrong.append(f"ended {status}, expected {expected}")
        if row["attempts"] < 1 or row["attempt_rows"] != row["attempts"]:
            wrong.append(f"{row['attempts']} attempts but {row['attempt_rows']} attempt rows")
        if row["attempts"] > len(schedule) + 1:
            wrong.append(f"{row['attempts']} attempts, the schedule allows {len(schedule) + 1}")
        if status == "failed" and not (row["last_error"] or row["status_code"]):
            wrong.append("failed without a reason (no error, no status code)")
        for step, (a, b) in zip(schedule, pairwise(starts), strict=False):
            if b - a < step * 0.8 - 0.05:
                wrong.append(f"retried {b - a:.2f} s after an attempt, its step is {step} s")
        if row["first_started"] is not None and row["last_ended"] is not None:
            spans.setdefault(kind, []).extend([row["first_started"], row["last_ended"]])
    for kind, times in spans.items():
        span = (max(times) - min(times)).total_seconds()
        bound = lane_bound_s(verdict.by_kind[kind]["deliveries"], schedule)
        verdict.by_kind[kind]["span_s"] = round(span, 1)
        if span > bound:
            problems[kind].append(f"its deliveries took {span:.0f} s (at most {bound:.0f} s)")
    for kind, wrong in problems.items():
        if wrong:
            examples = sorted(set(wrong))[:3]
            verdict.failures.append(f"hostile {kind}: {len(wrong)} wrong: {examples}")
    return verdict
