"""Scenario 10, sandbox under attack: hostile workflows all at once while a benign one runs on.

The level: the runner's service layer (`RunnerService.run`: the execution row `running`, the
run's event projected, the real Deno sandbox, the bindings answered from the real Postgres
projection, fetches through the real SSRF-guarded client, the row finished), with production
limits. Not the whole service behind Kafka: its consumer runs a fetched batch to the end
before it fetches again, so one run held to the 5 s wall time delays every run fetched with
or after it; the benign workflow's latency would measure that batch loop, not containment.
Nor does the scenario bound runs by `max_concurrent_runs` (16): 25 hostile runs at once would
fill it and the benign one would wait its turn, which is capacity, not containment.

A run is `sent` when requested, `delivered` when its execution row holds a final status,
`lost` otherwise. The benign workflow ("Log new participants", guide 001) runs in a loop, one
run at a time: first alone (quiet), then during the attack; its p99 during the attack must
stay within 2x the quiet one (`check_latency`; pytest leaves that timing out).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
from prometheus_client import CollectorRegistry

from services.delivery.dispatcher import GuardedResolver
from services.delivery.ssrf import AddressPolicy
from services.registry import repository, workflow_store
from services.workflow_runner.app import sandbox_settings, utcnow
from services.workflow_runner.bindings import Fetcher
from services.workflow_runner.projection import PutKv
from services.workflow_runner.sandbox import Sandbox
from services.workflow_runner.service import RunnerMetrics, RunnerService
from services.workflow_runner.settings import RunnerSettings
from shared.db import apply_migrations, create_pool, with_database
from shared.events import build_event, parse_event, render_payload
from shared.messages import WorkflowRunRequested, run_id_for
from shared.settings import PostgresSettings
from tests.chaos.hostile_workflows import (
    FETCH_URL,
    HOSTILE,
    POLLUTING_KEY,
    POLLUTING_VALUE,
    Hostile,
)
from tests.chaos.outcome import ScenarioOutcome
from tests.chaos.sandbox_checks import LATENCY_LIMIT, check_all
from tests.support.polling import eventually
from tests.support.receiver import Receiver
from tests.support.sandbox import LOG_NEW_PARTICIPANTS
from tests.support.services import postgres_server

NAME = "10 sandbox under attack"
BENIGN_PAUSE_S = 0.01
FETCH_HOST = "127.0.0.2"  # the receiver: the one local network the SSRF guard lets through
ROOM = {"id": "c3003c93-60cf-4184-b85f-20be14d26dac", "name": "Design review"}
ADA = {"id": "user-001", "name": "Ada"}


@dataclass(frozen=True)
class Plan:
    quiet_runs: int  # benign runs measured before the attack
    waves: int  # times every hostile workflow is run, all at once, one wave after the other


SHORT = Plan(quiet_runs=150, waves=1)
FULL = Plan(quiet_runs=600, waves=3)


@dataclass
class Benign:
    """The benign workflow's runs: (phase, run id, status, milliseconds)."""

    phase: str = "quiet"
    runs: list[tuple[str, str, str | None, float]] = field(default_factory=list)
    raised: list[str] = field(default_factory=list)

    def latencies(self, phase: str) -> list[float]:
        return [ms for p, _, _, ms in self.runs if p == phase]


async def run(
    *, short: bool, work_dir: Path, check_latency: bool = True, postgres_url: str | None = None
) -> ScenarioOutcome:
    """`check_latency=False` leaves the one timing criterion out of `failures` (pytest); its
    figures stay in `details`. `postgres_url`: a server to create the scenario's database on
    (default: as the tests find one, tests/support/services.py)."""
    plan = SHORT if short else FULL
    outcome = ScenarioOutcome(NAME, details={"level": "runner service layer", "plan": vars(plan)})
    work_dir.mkdir(parents=True, exist_ok=True)
    async with AsyncExitStack() as stack:
        pool = await stack.enter_async_context(_scratch_database(postgres_url))
        receiver = Receiver(host=FETCH_HOST)
        await receiver.start()
        stack.push_async_callback(receiver.stop)
        settings = RunnerSettings(
            postgres=PostgresSettings(url="unused"),
            health_port=0,
            allow_loopback=False,
            allowed_networks=[f"{FETCH_HOST}/32"],
        )
        sandbox = Sandbox(sandbox_settings(settings))
        await sandbox.start()
        stack.push_async_callback(sandbox.close)
        service = await _service(stack, pool, sandbox, settings)
        tenant = await _seed(pool, service, receiver.url("/fetched"))
        attack = Attack(service, tenant, plan)
        await attack.run()
        await check_all(outcome, pool, sandbox, settings, attack, receiver)
        if check_latency:
            outcome.check(
                outcome.details["latency_ok"],
                f"the benign workflow's p99 during the attack was "
                f"{outcome.details['p99_ratio']}x its quiet p99 (at most {LATENCY_LIMIT}x)",
            )
        (work_dir / "sandbox-attack.json").write_text(
            json.dumps({"benign": attack.benign.runs, **outcome.as_json()}, indent=1)
        )
    return outcome


@contextlib.asynccontextmanager
async def _scratch_database(server_url: str | None) -> AsyncIterator[asyncpg.Pool]:
    """A database of its own with the registry's and the runner's schemas; dropped after."""
    name = f"rh_chaos_sandbox_{uuid.uuid4().hex[:10]}"
    with contextlib.nullcontext(server_url) if server_url else postgres_server() as server:
        admin = await asyncpg.connect(with_database(server, "postgres"))
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            url = with_database(server, name)
            conn = await asyncpg.connect(url)
            try:
                for schema, package in (("registry", "services.registry"),
                                        ("workflow", "services.workflow_runner")):  # fmt: skip
                    await apply_migrations(conn, schema=schema, package=package)
            finally:
                await conn.close()
            pool = await create_pool(PostgresSettings(url=url, pool_max_size=10))
            try:
                yield pool
            finally:
                await pool.close()
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


async def _service(
    stack: AsyncExitStack, pool: asyncpg.Pool, sandbox: Sandbox, settings: RunnerSettings
) -> RunnerService:
    """The runner's service as app.py builds it, on this scenario's pool and sandbox."""
    policy = AddressPolicy.build(
        allow_loopback=settings.loopback_allowed, allowed_networks=settings.allowed_networks
    )
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(resolver=GuardedResolver(policy), limit=64)
    )
    stack.push_async_callback(session.close)
    fetcher = Fetcher(session, policy=policy, timeout_s=settings.fetch_timeout_s,
                      max_bytes=settings.fetch_max_bytes)  # fmt: skip
    return RunnerService(pool=pool, sandbox=sandbox, fetcher=fetcher, clock=utcnow,
                         metrics=RunnerMetrics(CollectorRegistry()))  # fmt: skip


@dataclass(frozen=True)
class Tenant:
    organization_id: str
    benign_id: str
    hostile_ids: dict[str, Hostile]  # workflow id -> what it does


async def _seed(pool: asyncpg.Pool, service: RunnerService, fetch_url: str) -> Tenant:
    """One account with the benign workflow and every hostile one, as the registry stores
    them, and the KV entry the binding-result attack reads."""
    org, now = uuid.uuid4(), datetime.now(UTC)
    ids: dict[str, Hostile] = {}

    async def workflow(conn: asyncpg.Connection, name: str, code: str) -> str:
        row = workflow_store.WorkflowRow(
            id=uuid.uuid4(), organization_id=org, name=name, events=["participant.joined"],
            room_id=None, enabled=True, language="js", version=1, revision=1, created_at=now,
            updated_at=now, code=code,
        )  # fmt: skip
        await workflow_store.insert(conn, row)
        return str(row.id)

    async with pool.acquire() as conn, conn.transaction():
        await repository.insert_account(conn, account_id=org, name="chaos: sandbox under attack")
        benign = await workflow(conn, "Log new participants", LOG_NEW_PARTICIPANTS)
        for hostile in HOSTILE:
            ids[await workflow(conn, hostile.name, hostile.code.replace(FETCH_URL, fetch_url))] = (
                hostile
            )
    await service.project([PutKv(str(org), ROOM["id"], *POLLUTING_KEY, POLLUTING_VALUE)])
    return Tenant(str(org), benign, ids)


def _request(tenant: Tenant, workflow_id: str, event_id: str) -> WorkflowRunRequested:
    """A run request as fanout makes it: the payload webhooks receive, tokens stripped."""
    raw = build_event(event="participant.joined", organization_id=tenant.organization_id,
                      room=ROOM, user=ADA, event_id=event_id, now=datetime.now(UTC))  # fmt: skip
    return WorkflowRunRequested(
        run_id=run_id_for(workflow_id, event_id),
        workflow_id=workflow_id,
        version=1,
        organization_id=tenant.organization_id,
        room_id=ROOM["id"],
        event_id=event_id,
        event=json.loads(render_payload(parse_event(raw))),
        created_at=datetime.now(UTC),
    )


class Attack:
    """The benign loop, quiet then under attack, and the hostile waves."""

    def __init__(self, service: RunnerService, tenant: Tenant, plan: Plan) -> None:
        self.service, self.tenant, self.plan = service, tenant, plan
        self.benign = Benign()
        self.hostile_runs: dict[str, tuple[str, int]] = {}  # run id -> (workflow id, wave)
        self.hostile_raised: list[str] = []
        self.attack_s = 0.0

    @property
    def sent(self) -> list[str]:
        return [run_id for _, run_id, _, _ in self.benign.runs] + list(self.hostile_runs)

    async def run(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.create_task(self._benign_loop(stop))
        try:
            await eventually(self._quiet_done, timeout_s=120, interval_s=0.05)
            self.benign.phase = "attack"
            started = time.monotonic()
            for wave in range(self.plan.waves):
                await self._wave(wave)
            self.attack_s = time.monotonic() - started
        finally:
            stop.set()
            await loop

    async def _quiet_done(self) -> bool:
        return len(self.benign.latencies("quiet")) >= self.plan.quiet_runs

    async def _benign_loop(self, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            request = _request(self.tenant, self.tenant.benign_id, f"benign-{n}")
            phase, started = self.benign.phase, time.perf_counter()
            try:
                status = await self.service.run(request)
            except Exception as exc:  # noqa: BLE001 - the runner failing is what we report
                status = None
                self.benign.raised.append(repr(exc)[:300])
            elapsed_ms = (time.perf_counter() - started) * 1000
            phase = self.benign.phase if phase != self.benign.phase else phase  # overlapped: attack
            self.benign.runs.append((phase, request.run_id, status, round(elapsed_ms, 2)))
            await asyncio.sleep(BENIGN_PAUSE_S)

    async def _wave(self, wave: int) -> None:
        requests = [
            _request(self.tenant, workflow_id, f"attack-{wave}")
            for workflow_id in self.tenant.hostile_ids
        ]
        for request in requests:
            self.hostile_runs[request.run_id] = (request.workflow_id, wave)
        results = await asyncio.gather(
            *(self.service.run(r) for r in requests), return_exceptions=True
        )
        self.hostile_raised += [repr(r)[:300] for r in results if isinstance(r, BaseException)]
