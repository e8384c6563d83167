"""The hostile-tenants scenario of `make chaos`: a hostile tenant (and producer) beside well-behaved
ones.

While victim accounts get a steady load of events delivered (every pair checked, as in the
other pipeline scenarios) and a victim's workflow runs on every event of its room, the
attacker: sends events with NUL and lone surrogates, nested 10,000 deep, or wrongly shaped
(`"users": 5`); puts run requests with bad ids straight on `<ns>.workflow-runs` and malformed
delivery requests on `<ns>.deliveries`; runs workflows that return or log NUL, lone
surrogates or 1 MB; sends the API text it cannot store and JSON nested 5,000 deep; creates
webhooks and workflows past its quota (set low here: QUOTAS) and calls the API past its rate.

Every victim pair ends `success` and every victim run `success`; each bad message is in its
topic's DLQ exactly once with a reason naming what is wrong (tenant_inputs.py), each bad
request is a 4xx naming the field, each over-quota creation a 4xx, the flood gets 429s with
`Retry-After`; each attacker run ends in a final, recorded status; no process restarts
(tenant_checks.py).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from services.registry.accounts.repository import PostgresAccounts
from services.registry.accounts.service import AccountService
from services.registry.policy import Role
from shared.dead_letters import H_ERROR, H_TOPIC
from shared.kafka import JSON_HEADERS, make_consumer, make_producer
from shared.messages import delivery_id_for, run_id_for
from shared.settings import KafkaSettings
from tests.bench.load import EventPublisher, Target
from tests.bench.pipeline import wait_for_index
from tests.bench.stack import Account, Stack
from tests.chaos.hostile_endpoints import create_webhook
from tests.chaos.outcome import ScenarioOutcome
from tests.chaos.pipeline_faults import Setup, account
from tests.chaos.platform import ChaosRun
from tests.chaos.tenant_checks import FINAL_RUN, judge_api, judge_letters, judge_runs
from tests.chaos.tenant_inputs import (
    API_PROBES,
    BENIGN_CODE,
    HOSTILE_WORKFLOWS,
    MESSAGES,
    BadMessage,
    Tenant,
)
from tests.support.receiver import Receiver

NAME = "hostile tenants"
# The registry's quotas and rate for this scenario: low, so the attacker meets them at once.
WEBHOOK_QUOTA, WORKFLOW_QUOTA = 8, len(HOSTILE_WORKFLOWS)
API_RATE_PER_S, API_BURST = 20, 60
QUOTAS = {
    "ROOMHOOKS_REGISTRY_WEBHOOKS_PER_ACCOUNT": str(WEBHOOK_QUOTA),
    "ROOMHOOKS_REGISTRY_WORKFLOWS_PER_ACCOUNT": str(WORKFLOW_QUOTA),
    "ROOMHOOKS_REGISTRY_API_RATE_PER_S": str(API_RATE_PER_S),
    "ROOMHOOKS_REGISTRY_API_BURST": str(API_BURST),
}
FLOOD = 4 * API_BURST  # requests the attacker's key sends at once
RUNS_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class Plan:
    events: int  # victim events
    rate: float  # victim events/s
    copies: int  # of each bad message
    attacker_events: int  # good events in the attacker's room (its workflows run on each)


SHORT = Plan(events=600, rate=150.0, copies=2, attacker_events=2)
FULL = Plan(events=6_000, rate=200.0, copies=20, attacker_events=10)


@dataclass
class Attacker:
    account: Account
    tenant: Tenant
    webhook_id: str
    workflows: dict[str, str] = field(default_factory=dict)  # workflow id -> its name
    api: dict[str, Any] = field(default_factory=dict)  # what the API answered
    good_events: list[str] = field(default_factory=list)


async def run(setup: Setup, *, short: bool) -> ScenarioOutcome:
    plan = SHORT if short else FULL
    outcome = ScenarioOutcome(NAME, details={"plan": vars(plan), "settings": QUOTAS})
    receiver = Receiver()
    await receiver.start()
    try:
        async with setup.run("hostile-tenants", **QUOTAS) as chaos:
            await chaos.add_webhooks(accounts=3, per_account=4)
            victim = await _victim_workflow(chaos)
            attacker = await _attacker(chaos, receiver)
            await wait_for_index(chaos.stack, len(chaos.hooks) + WEBHOOK_QUOTA)
            await _wait_for_workflows(chaos.stack, 1 + len(HOSTILE_WORKFLOWS))
            pids = chaos.stack.pids()

            sender = asyncio.create_task(_send_bad(chaos, attacker, plan))
            flood = asyncio.create_task(_flood(chaos.stack, attacker.account, chaos.hooks))
            await chaos.run_load(events=plan.events, rate=plan.rate)
            sent = await sender
            outcome.details["api_rate"] = await flood
            settled, succeeded = await chaos.settle()
            account(outcome, chaos, settled, succeeded)

            wf_id, wf_room = victim
            victim_runs = [
                run_id_for(wf_id, f"chaos-{chaos.name}-{n}")
                for n in range(chaos.published)
                if chaos.hooks[n % len(chaos.hooks)].target.room_id == wf_room
            ]
            # Bad text in a user's name, if escaped and delivered, runs the attacker's workflows.
            delivered = await _delivered(chaos, attacker, sent)
            attacker_runs = {
                run_id_for(wf, event_id): name
                for wf, name in attacker.workflows.items()
                for event_id in [*attacker.good_events, *delivered]
            }
            setup.progress(f"waiting for {len(victim_runs) + len(attacker_runs)} runs")
            runs = await _runs(chaos, [*victim_runs, *attacker_runs])
            outcome.details["runs_recorded"] = await _runs_recorded(chaos)
            letters = await read_letters(
                chaos.stack.kafka_settings(),
                [
                    chaos.topics.events_dlq,
                    chaos.topics.deliveries_dlq,
                    chaos.topics.workflow_runs_dlq,
                ],
                wanted={k for k, m in sent.items() if not m.may_deliver},
            )
            restarted = sorted(n for n, pid in pids.items() if chaos.stack.pids().get(n) != pid)
    finally:
        await receiver.stop()

    judge_runs(outcome, runs, victim_runs, attacker_runs)
    judge_letters(outcome, chaos.topics, sent, letters, delivered)
    judge_api(outcome, attacker.api)
    outcome.details["restarted"] = restarted
    outcome.check(not restarted, f"processes restarted: {', '.join(restarted)}")
    return outcome


# --- setup ----------------------------------------------------------------------------------


async def _victim_workflow(chaos: ChaosRun) -> tuple[str, str]:
    """A benign workflow of the first victim account, on its first webhook's room."""
    hook = chaos.hooks[0]
    owner = await owner_of(chaos.stack, hook.target.organization_id)
    body = {
        "name": "victim: log joins",
        "events": ["participant.joined"],
        "code": BENIGN_CODE,
        "roomId": hook.target.room_id,
    }
    status, _h, answer = await api(chaos.stack, owner, "POST", "workflows", json.dumps(body))
    if status != 201:
        raise RuntimeError(f"the victim's workflow was refused: {status} {answer}")
    return answer["data"]["workflow"]["id"], hook.target.room_id


async def _attacker(chaos: ChaosRun, receiver: Receiver) -> Attacker:
    """The attacker's account: the API probes first (its key's bucket is full), then a
    webhook and workflows up to the quotas, then one of each past them."""
    stack = chaos.stack
    owner = await stack.create_account("chaos-hostile-tenants-attacker")
    room = "attacker-room"
    answers: dict[str, Any] = {"probes": {}}
    for probe in API_PROBES:
        status, _h, answer = await api(
            stack, owner, "POST", probe.collection, probe.body(receiver.url("/probe"))
        )
        answers["probes"][probe.name] = {
            "status": status,
            "error": _error(answer),
            "field": probe.field,
        }
    hook = await create_webhook(
        stack,
        owner,
        {
            "url": receiver.url("/attacker"),
            "events": ["participant.joined"],
            "roomId": room,
            "retrySchedule": [1],
        },
    )
    for n in range(WEBHOOK_QUOTA - 1):
        await create_webhook(
            stack,
            owner,
            {
                "url": receiver.url(f"/filler-{n}"),
                "events": ["participant.joined"],
                "roomId": f"attacker-filler-{n}",
            },
        )
    over = {"url": receiver.url("/over"), "events": ["participant.joined"], "roomId": "over"}
    status, _h, answer = await api(stack, owner, "POST", "webhooks", json.dumps(over))
    answers["webhook_over_quota"] = {"status": status, "error": _error(answer)}
    workflows: dict[str, str] = {}
    for hostile in HOSTILE_WORKFLOWS:
        body = {
            "name": hostile.name,
            "events": ["participant.joined"],
            "code": hostile.code,
            "roomId": room,
        }
        status, _h, answer = await api(stack, owner, "POST", "workflows", json.dumps(body))
        if status != 201:
            raise RuntimeError(f"workflow {hostile.name!r} was refused: {status} {answer}")
        workflows[answer["data"]["workflow"]["id"]] = hostile.name
    body = {"name": "over", "events": ["participant.joined"], "code": BENIGN_CODE}
    status, _h, answer = await api(stack, owner, "POST", "workflows", json.dumps(body))
    answers["workflow_over_quota"] = {"status": status, "error": _error(answer)}
    first = next(iter(workflows))
    return Attacker(owner, Tenant(owner.id, room, first), hook["id"], workflows, answers)


async def owner_of(stack: Stack, account_id: str) -> Account:
    """A new owner key of an account the stack made (it keeps none of their keys)."""
    assert stack.pool is not None
    token = await AccountService(PostgresAccounts(stack.pool)).create_key(
        uuid.UUID(account_id), Role.OWNER
    )
    return Account(account_id, token)


async def _wait_for_workflows(stack: Stack, enabled: int, timeout_s: float = 30.0) -> None:
    key = 'roomhooks_fanout_index_workflows{state="enabled"}'
    deadline = time.monotonic() + timeout_s
    while (held := (await stack.metrics("fanout")).get(key, 0)) < enabled:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fanout holds {held:.0f} enabled workflows, wanted {enabled}")
        await asyncio.sleep(0.2)


async def api(
    stack: Stack, owner: Account, method: str, collection: str, body: bytes | str | None = None
) -> tuple[int, dict[str, str], Any]:
    """One request on the owner's account; (status, headers, JSON answer or None)."""
    assert stack.session is not None
    url = f"{stack.api_url}/v1/accounts/{owner.id}/{collection}"
    headers = owner.auth | {"Content-Type": "application/json"}
    async with stack.session.request(method, url, data=body, headers=headers) as response:
        text = await response.read()
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        return response.status, dict(response.headers), answer


def _error(answer: Any) -> dict[str, Any] | None:
    if not isinstance(answer, dict) or not isinstance(answer.get("error"), dict):
        return None
    error = answer["error"]
    return {
        "code": error.get("code"),
        "message": str(error.get("message"))[:200],
        "details": str(error.get("details"))[:300],
    }


# --- the attack -----------------------------------------------------------------------------


async def _send_bad(chaos: ChaosRun, attacker: Attacker, plan: Plan) -> dict[str, BadMessage]:
    """Every bad message `plan.copies` times and the attacker's good events, spread over the
    victims' load; returns what was sent, by key."""
    topics = chaos.topics
    sent: dict[str, BadMessage] = {}
    producer = make_producer(
        chaos.stack.kafka_settings(), linger_ms=5, max_request_size=2 * 1024 * 1024
    )
    await producer.start()
    try:
        for n in range(plan.copies):
            for message in MESSAGES:
                key = message.key(n)
                sent[key] = message
                await producer.send_and_wait(
                    getattr(topics, message.topic),
                    message.value(attacker.tenant, n),
                    key=key.encode(),
                    headers=JSON_HEADERS,
                )
            await asyncio.sleep(plan.events / plan.rate / (plan.copies + 1))
    finally:
        await producer.stop()
    target = Target(attacker.tenant.organization_id, attacker.tenant.room_id)
    async with EventPublisher(chaos.stack.kafka_settings(), topics.events) as out:
        for n in range(plan.attacker_events):
            event_id = f"attacker-good-{n}"
            attacker.good_events.append(event_id)
            await (await out.send(target, event_id=event_id))
    return sent


async def _flood(stack: Stack, attacker: Account, hooks: list) -> dict[str, Any]:
    """FLOOD requests at once on the attacker's key; a victim's key meanwhile."""
    victim_account = await owner_of(stack, hooks[-1].target.organization_id)
    answers = await asyncio.gather(*(api(stack, attacker, "GET", "webhooks") for _ in range(FLOOD)))
    victims = [await api(stack, victim_account, "GET", "webhooks") for _ in range(5)]
    statuses = Counter(status for status, _h, _a in answers)
    refused = [(h, a) for status, h, a in answers if status == 429]
    sample = refused[0] if refused else ({}, None)
    return {
        "requests": FLOOD,
        "attacker_statuses": dict(statuses),
        "victim_statuses": dict(Counter(status for status, _h, _a in victims)),
        "refused_without_retry_after": sum(1 for h, _a in refused if "Retry-After" not in h),
        "refused_without_envelope": sum(1 for _h, a in refused if _error(a) is None),
        "sample_429": {
            "headers": {
                k: v for k, v in sample[0].items() if k.lower().startswith(("retry", "ratelimit"))
            },
            "error": _error(sample[1]),
        },
    }


# --- reading back ---------------------------------------------------------------------------


async def _runs(chaos: ChaosRun, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each run's execution row once all are final (or after RUNS_TIMEOUT_S)."""
    assert chaos.stack.pool is not None
    deadline = time.monotonic() + RUNS_TIMEOUT_S
    wanted = [uuid.UUID(r) for r in run_ids]
    while True:
        rows = await chaos.stack.pool.fetch(
            "SELECT id::text AS id, status, left(result::text, 200) AS result,"
            " left(error::text, 300) AS error, left(logs::text, 200) AS logs,"
            " length(result::text) AS result_chars, length(logs::text) AS logs_chars"
            " FROM workflow.executions WHERE id = ANY($1)",
            wanted,
        )
        found = {r["id"]: dict(r) for r in rows}
        final = sum(1 for r in found.values() if r["status"] in FINAL_RUN)
        chaos.progress(f"runs: {final:,}/{len(run_ids):,} final")
        if final == len(run_ids) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(1.0)


async def _runs_recorded(chaos: ChaosRun, *, timeout_s: float = 5.0) -> dict[str, int]:
    """Executions the runner finished (its metric, counted once a row is final) against the
    final rows there are: a run run again counts twice."""
    assert chaos.stack.pool is not None
    key = "roomhooks_workflow_executions_total{"
    deadline = time.monotonic() + timeout_s
    while True:
        metrics = await chaos.stack.metrics("workflow_runner")
        finished = int(sum(v for k, v in metrics.items() if k.startswith(key)))
        rows = await chaos.stack.pool.fetchval(
            "SELECT count(*) FROM workflow.executions WHERE status <> 'running'"
        )
        if finished >= rows or time.monotonic() > deadline:
            return {"finished": finished, "rows": rows}
        await asyncio.sleep(0.2)


async def read_letters(
    kafka: KafkaSettings, topics: list[str], *, wanted: set[str], idle_s: float = 15.0
) -> dict[str, list[tuple[str, str, str]]]:
    """Every dead letter of `topics` from the beginning, by key: [(DLQ topic, rh-error,
    rh-topic)], one per record (a key dead-lettered twice has two). Stops once every key of
    `wanted` was read and nothing new came for a second, or nothing new came for `idle_s`."""
    consumer = make_consumer(kafka, group_id=None, max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    letters: dict[str, list[tuple[str, str, str]]] = {}
    try:
        await consumer.topics()
        assigned = [
            TopicPartition(topic, p)
            for topic in topics
            for p in consumer.partitions_for_topic(topic) or set()
        ]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        last_new = time.monotonic()
        while True:
            quiet = time.monotonic() - last_new
            if quiet > idle_s or (quiet > 1.0 and wanted <= letters.keys()):
                break
            batch = await consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                for record in records:
                    headers = {k: v.decode("utf-8", "replace") for k, v in record.headers}
                    key = (record.key or b"").decode("utf-8", "replace")
                    letters.setdefault(key, []).append(
                        (tp.topic, headers.get(H_ERROR, ""), headers.get(H_TOPIC, ""))
                    )
                    last_new = time.monotonic()
    finally:
        await consumer.stop()
    return letters


async def _delivered(
    chaos: ChaosRun, attacker: Attacker, sent: dict[str, BadMessage], *, timeout_s: float = 30.0
) -> dict[str, str]:
    """The status of the attacker's delivery for each `may_deliver` event, where there is one
    (once none is pending, or after `timeout_s`)."""
    assert chaos.stack.pool is not None
    ids = {
        delivery_id_for(attacker.webhook_id, key): key
        for key, message in sent.items()
        if message.may_deliver
    }
    deadline = time.monotonic() + timeout_s
    while True:
        rows = await chaos.stack.pool.fetch(
            "SELECT id::text AS id, status FROM delivery.deliveries WHERE id = ANY($1::uuid[])",
            list(ids),
        )
        statuses = {ids[r["id"]]: r["status"] for r in rows}
        if "pending" not in statuses.values() or time.monotonic() > deadline:
            return statuses
        await asyncio.sleep(0.5)
