"""The platform under test, started as `make run` starts it, plus the receiver.

A Tansu broker on a free port, a fresh database on the local Postgres server (migrated as the
dev stack migrates it, dropped at the end), the topics, and every service as
`python -m services.<name>` with the dev profile, JSON logs in `.roomhooks/bench/logs/` and
free ports; then the receiver process. `Stack.stop()` stops all of it (also on Ctrl-C).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import psutil

from devtool.broker import TANSU_GAP_RECHECK_MS, tansu_command
from devtool.devstack import DevSettings, ServiceLayout, services_root
from devtool.postgres import migrate_all
from services.registry.accounts.repository import PostgresAccounts
from services.registry.accounts.service import AccountService
from services.registry.policy import Role
from shared.db import create_pool, with_database
from shared.kafka import Topics, ensure_topics
from shared.kafka.topic_setup import make_admin
from shared.settings import KafkaSettings, PostgresSettings
from tests.bench.autovacuum import AutovacuumStandIn
from tests.bench.processes import (
    BenchProcess,
    CpuMeter,
    Processes,
    family,
    postgres_processes,
    python_module,
)
from tests.bench.receiver import ReceiverClient
from tests.support.processes import service_env
from tests.support.services import free_port, wait_for_port

NAMESPACE = "roomhooks"
READY_TIMEOUT_S = 60.0
# The dev stack's Kafka settings for the broker it starts (`make run` uses these).
PARTITIONS = DevSettings.model_fields["broker_partitions"].default
KAFKA_DEFAULTS = {"KAFKA_SESSION_TIMEOUT_MS": "6000"}

# The registry part creates webhooks for 10 s in one account, then lists them at 500/s with
# one key: past the default quota (1,000) and key rate (100/s). A scenario's own
# `service_settings` override these.
REGISTRY_BENCH_LIMITS = {
    "ROOMHOOKS_REGISTRY_WEBHOOKS_PER_ACCOUNT": "1000000",
    "ROOMHOOKS_REGISTRY_API_RATE_PER_S": "100000",
    "ROOMHOOKS_REGISTRY_API_BURST": "100000",
}


class StackError(RuntimeError):
    """The platform did not start; the message says which part and where its log is."""


@dataclass
class Account:
    id: str
    owner_token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.owner_token}"}


@dataclass
class Stack:
    """One bench run's platform. Build with `Stack.start(...)`; always `await stop()`."""

    state_dir: Path
    server_url: str  # a database on the Postgres server that may create databases
    processes: Processes
    database_url: str = ""
    bootstrap: str = ""
    api_url: str = ""
    health_ports: dict[str, int] = field(default_factory=dict)
    receiver_url: str = ""
    session: aiohttp.ClientSession | None = None
    pool: asyncpg.Pool | None = None
    receiver: ReceiverClient | None = None
    database_name: str = ""
    database_dropped: bool = False
    # The server settings that shape every figure read through Postgres (POSTGRES_SHOWN).
    postgres_settings: dict[str, str] = field(default_factory=dict)
    # Stands in for the server's autovacuum when it is off (autovacuum.py).
    autovacuum: AutovacuumStandIn | None = None
    # Extra environment for every service (`make chaos` shortens leases and timeouts).
    service_settings: dict[str, str] = field(default_factory=dict)
    # Per topic: `make run`'s. Replicas of a service share a topic's partitions, so a run
    # that adds one needs more than one.
    partitions: int = PARTITIONS
    _service_env: dict[str, str] = field(default_factory=dict)

    # --- start ---------------------------------------------------------------------------

    async def start(self, progress: Callable[[str], None]) -> None:
        progress("starting the broker")
        _broker, self.bootstrap = await start_broker(self.processes, "broker", self.env())
        progress("creating a fresh database")
        self.database_name = f"roomhooks_bench_{uuid.uuid4().hex[:10]}"
        self.database_url = with_database(self.server_url, self.database_name)
        admin = await asyncpg.connect(self.server_url)
        try:
            await admin.execute(f'CREATE DATABASE "{self.database_name}"')
        finally:
            await admin.close()
        layout = ServiceLayout.scan(services_root())
        await migrate_all(self.database_url, layout.with_migrations)
        await ensure_topics(self.kafka_settings())
        self.pool = await create_pool(
            PostgresSettings(url=self.database_url, pool_min_size=1, pool_max_size=4)
        )
        self.postgres_settings = await postgres_settings_of(self.pool)
        if self.postgres_settings.get("autovacuum") == "off":
            self.autovacuum = AutovacuumStandIn(self.database_url)
            await self.autovacuum.start()
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=30)
        )

        progress("starting the receiver")
        port = free_port()
        self.processes.start(
            "receiver",
            python_module("tests.bench.receiver", "--port", str(port)),
            self.env(),
        )
        await asyncio.to_thread(wait_for_port, "127.0.0.1", port, timeout_s=15)
        self.receiver_url = f"http://127.0.0.1:{port}"
        self.receiver = ReceiverClient(self.receiver_url, self.session)

        progress("starting the services")
        api_port = free_port()
        self.api_url = f"http://127.0.0.1:{api_port}"
        ports = {
            "fanout": "ROOMHOOKS_FANOUT_HEALTH_PORT",
            "delivery": "ROOMHOOKS_DELIVERY_HEALTH_PORT",
            "workflow_runner": "ROOMHOOKS_WORKFLOWS_HEALTH_PORT",
        }
        extra = (
            REGISTRY_BENCH_LIMITS
            | self.service_settings
            | {"ROOMHOOKS_REGISTRY_PORT": str(api_port)}
        )
        for name, variable in ports.items():
            self.health_ports[name] = free_port()
            extra[variable] = str(self.health_ports[name])
        self._service_env = self.env(**extra)
        for name in layout.runnable:
            self.processes.start(name, python_module(f"services.{name}"), self._service_env)
        urls = {"registry": f"{self.api_url}/readyz"} | {
            name: f"http://127.0.0.1:{port}/readyz" for name, port in self.health_ports.items()
        }
        for name, url in urls.items():
            progress(f"waiting for {name} to be ready")
            await self.wait_ready(name, url)

    def env(self, **extra: str) -> dict[str, str]:
        """What every child gets: the dev profile, JSON logs, this run's connections."""
        return service_env(
            database_url=self.database_url or self.server_url,
            bootstrap=self.bootstrap or "127.0.0.1:9",
            namespace=NAMESPACE,
            **(KAFKA_DEFAULTS | {"KAFKA_PARTITIONS": str(self.partitions)} | extra),
        )

    def kafka_settings(self, namespace: str = NAMESPACE) -> KafkaSettings:
        return KafkaSettings(
            bootstrap_servers=self.bootstrap,
            topic_namespace=namespace,
            partitions=self.partitions,
            gap_recheck_ms=TANSU_GAP_RECHECK_MS,
        )

    async def wait_ready(self, name: str, url: str, *, timeout_s: float = READY_TIMEOUT_S) -> None:
        assert self.session is not None
        deadline = time.monotonic() + timeout_s
        child = self.processes.get(name)
        while True:
            try:
                async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
                    if r.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            if child is None or not child.alive() or time.monotonic() > deadline:
                log = child.log_tail() if child else ""
                raise StackError(f"{name} not ready at {url}; its log ends:\n{log}")
            await asyncio.sleep(0.2)

    # --- faults (`make chaos`) ------------------------------------------------------------

    async def add_delivery_replica(self, instance: str, **settings: str) -> None:
        """One more delivery process with its own health port: in the same consumer group,
        unless `settings` (environment variables) put it on other topics."""
        self.health_ports[instance] = free_port()
        env = (
            self._service_env
            | settings
            | {"ROOMHOOKS_DELIVERY_HEALTH_PORT": str(self.health_ports[instance])}
        )
        self.processes.start(instance, python_module("services.delivery"), env)
        await self.wait_ready(instance, self.ready_url(instance))

    def kill(self, instance: str) -> int:
        """SIGKILL a running process (and what it started); returns the pid it had."""
        child = self.processes.get(instance)
        if child is None:
            raise StackError(f"{instance} is not running")
        pid = child.pid
        child.kill()
        return pid

    async def restart(self, instance: str) -> float:
        """Start a stopped process again as it was; seconds until it answered /readyz."""
        child = self.processes.named(instance)
        if child is None or child.alive():
            raise StackError(f"{instance} is not a stopped process of this stack")
        started = time.monotonic()
        child.start()
        if instance == "broker":
            await asyncio.to_thread(
                wait_for_port, "127.0.0.1", int(self.bootstrap.rsplit(":", 1)[1]), timeout_s=15
            )
        elif instance != "receiver":
            await self.wait_ready(instance, self.ready_url(instance))
        return time.monotonic() - started

    def ready_url(self, instance: str) -> str:
        if instance == "registry":
            return f"{self.api_url}/readyz"
        return f"http://127.0.0.1:{self.health_ports[instance]}/readyz"

    def pids(self) -> dict[str, int]:
        """The pid of every running process, by name (a restart changes it)."""
        return {child.name: child.pid for child in self.processes.running()}

    # --- helpers the parts use -----------------------------------------------------------

    async def create_account(self, name: str) -> Account:
        assert self.pool is not None
        accounts = AccountService(PostgresAccounts(self.pool))
        account_id = await accounts.create_account(name)
        return Account(str(account_id), await accounts.create_key(account_id, Role.OWNER))

    async def create_webhook(self, account: Account, body: dict) -> dict:
        """POST through the registry API; the 201's `data.webhook` (with its secret)."""
        assert self.session is not None
        url = f"{self.api_url}/v1/accounts/{account.id}/webhooks"
        async with self.session.post(url, json=body, headers=account.auth) as response:
            answer = await response.json()
            if response.status != 201:
                raise StackError(f"creating a webhook answered {response.status}: {answer}")
        return answer["data"]["webhook"]

    async def delete_webhook(self, account: Account, webhook_id: str) -> None:
        assert self.session is not None
        url = f"{self.api_url}/v1/accounts/{account.id}/webhooks/{webhook_id}"
        async with self.session.delete(url, headers=account.auth) as response:
            await response.read()

    async def metrics(self, service: str) -> dict[str, float]:
        """A service's Prometheus samples, by name with labels (`name{a="b"}`)."""
        assert self.session is not None
        url = f"http://127.0.0.1:{self.health_ports[service]}/metrics"
        return await scrape(self.session, url)

    async def drop_topics(self, settings: KafkaSettings) -> None:
        """Delete the topics of a part's own namespace once it is done with them: the dev
        broker keeps every record in memory and each fetch costs more for every batch it
        holds, so what one part wrote would slow the parts after it."""
        admin = make_admin(settings)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            names = [n for n in Topics.from_settings(settings).all() if n in existing]
            if names:
                await admin.delete_topics(names)
        finally:
            await admin.close()

    def cpu_meter(self, *, bench_pid: int) -> CpuMeter:
        """CPU of every service, the broker, the receiver, Postgres and the bench itself."""
        groups: dict[str, Callable[[], list[psutil.Process]]] = {}
        for child in self.processes.running():
            groups[child.name] = _family_of(child)
        groups["postgres"] = postgres_processes
        groups["bench (publisher/client)"] = lambda: family(bench_pid)[:1]
        return CpuMeter(groups)

    # --- stop ----------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop every child (services first), close clients, drop the database."""
        if self.autovacuum is not None:
            await self.autovacuum.stop()
        await asyncio.to_thread(self.processes.stop_all)
        if self.session is not None:
            await self.session.close()
        if self.pool is not None:
            await self.pool.close()
        if self.database_name and not self.database_dropped:
            await drop_database(self.server_url, self.database_name)
            self.database_dropped = True


def _family_of(child: BenchProcess) -> Callable[[], list[psutil.Process]]:
    return lambda: family(child.pid) if child.alive() else []


async def scrape(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with session.get(url) as response:
        text = await response.text()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            samples[name] = float(value)
        except ValueError:
            continue
    return samples


# With autovacuum off (as on some CI machines) the bench stands in for it (autovacuum.py).
POSTGRES_SHOWN = ("server_version", "autovacuum", "shared_buffers", "synchronous_commit", "fsync")


async def postgres_settings_of(pool: asyncpg.Pool) -> dict[str, str]:
    rows = await pool.fetch(
        "SELECT name, current_setting(name) AS value FROM unnest($1::text[]) AS name",
        list(POSTGRES_SHOWN),
    )
    return {r["name"]: r["value"] for r in rows}


async def drop_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await conn.close()


async def start_broker(
    processes: Processes, name: str, env: dict[str, str]
) -> tuple[BenchProcess, str]:
    """A memory-only dev broker on a free port, once it listens: its process and address."""
    port = free_port()
    child = processes.start(name, tansu_command("127.0.0.1", port), env)
    await asyncio.to_thread(wait_for_port, "127.0.0.1", port, timeout_s=15)
    return child, f"127.0.0.1:{port}"
