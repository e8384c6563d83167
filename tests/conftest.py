"""Fixtures for real services: a Kafka-protocol broker and Postgres (see tests/support)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from devtool.broker import TANSU_GAP_RECHECK_MS
from shared.db import apply_migrations, create_pool, with_database
from shared.kafka import Topics, ensure_topics
from shared.retention import prepare_partitions
from shared.secrets_box import KEY_SETTING
from shared.settings import KafkaSettings, PostgresSettings
from tests.support.secrets import TEST_SECRETS_KEY
from tests.support.services import grants_idempotent_producer, kafka_bootstrap, postgres_server

# Every service that owns a schema; the template database has all of them migrated, with
# their day partitions made.
SCHEMAS = {
    "registry": "services.registry",
    "delivery": "services.delivery",
    "workflow": "services.workflow_runner",
    "events": "services.fanout",
}


@pytest.fixture(scope="session", autouse=True)
def secrets_key() -> Iterator[str]:
    """ROOMHOOKS_SECRETS_KEY for every service the tests build in-process (their settings
    read it from the environment); service processes get the same key from `service_env`."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(KEY_SETTING, TEST_SECRETS_KEY)
        yield TEST_SECRETS_KEY


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="session")
def broker(artifacts_dir: Path) -> Iterator[str]:
    with kafka_bootstrap(artifacts_dir) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


async def _admin(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(with_database(url, "postgres"))


@pytest.fixture(scope="session")
async def template_database(postgres_url: str) -> AsyncIterator[str]:
    """A database with every migration applied, cloned for each test."""
    name = f"rh_tpl_{uuid.uuid4().hex[:10]}"
    admin = await _admin(postgres_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    conn = await asyncpg.connect(with_database(postgres_url, name))
    try:
        for schema, package in SCHEMAS.items():
            await apply_migrations(conn, schema=schema, package=package)
            await prepare_partitions(conn, importlib.import_module(f"{package}.retention").PLAN)
    finally:
        await conn.close()
    yield name
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@contextlib.asynccontextmanager
async def _database_of_its_own(postgres_url: str, template: str) -> AsyncIterator[str]:
    name = f"rh_test_{uuid.uuid4().hex[:10]}"
    admin = await _admin(postgres_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        yield with_database(postgres_url, name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


class FreshDatabases:
    """Clones of the template for one test each, the next one made while the current test
    runs: a clone of its ~800 relations takes 0.3-0.4 s, which every test that needs a
    database waited for in its setup, and its drop ~0.1 s in its teardown, now done in the
    background too. A database still serves one test only, cloned from the template no
    earlier than the test before it started; none is ever reused."""

    def __init__(self, admin: asyncpg.Pool, template: str) -> None:
        self._admin, self._template = admin, template
        self._next: asyncio.Task[str] | None = None
        self._drops: set[asyncio.Task[None]] = set()

    async def _clone(self) -> str:
        name = f"rh_test_{uuid.uuid4().hex[:10]}"
        await self._admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"')
        return name

    async def _drop(self, name: str) -> None:
        await self._admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def take(self) -> str:
        """A database no test has used; starts cloning the next one."""
        ahead, self._next = self._next, None
        name = await (ahead or self._clone())
        self._next = asyncio.create_task(self._clone())
        return name

    def discard(self, name: str) -> None:
        task = asyncio.create_task(self._drop(name))
        self._drops.add(task)
        task.add_done_callback(self._drops.discard)

    async def close(self) -> None:
        """Drops the clone made ahead and waits for every drop: before the template goes."""
        if self._next is not None:
            with contextlib.suppress(Exception):
                self.discard(await self._next)
        await asyncio.gather(*self._drops)


@pytest.fixture(scope="session")
async def fresh_databases(
    postgres_url: str, template_database: str
) -> AsyncIterator[FreshDatabases]:
    async with asyncpg.create_pool(
        with_database(postgres_url, "postgres"), min_size=1, max_size=3
    ) as admin:
        databases = FreshDatabases(admin, template_database)
        try:
            yield databases
        finally:
            await databases.close()


@pytest.fixture
async def database_url(postgres_url: str, fresh_databases: FreshDatabases) -> AsyncIterator[str]:
    """A fresh, migrated database of its own for one test."""
    name = await fresh_databases.take()
    yield with_database(postgres_url, name)
    fresh_databases.discard(name)


@pytest.fixture(scope="module")
async def module_database_url(postgres_url: str, template_database: str) -> AsyncIterator[str]:
    """A fresh, migrated database for the tests of one module that share what runs on it
    (e.g. one `roomhooks dev` that only some read-only tests look at)."""
    async with _database_of_its_own(postgres_url, template_database) as url:
        yield url


@pytest.fixture
def postgres_settings(database_url: str) -> PostgresSettings:
    return PostgresSettings(url=database_url, pool_min_size=1, pool_max_size=5)


@pytest.fixture
async def pool(postgres_settings: PostgresSettings) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(postgres_settings)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def broker_grants_idempotence(broker: str) -> bool:
    """Apache Kafka does, the dev broker does not: the tests' producers are as production's."""
    return await grants_idempotent_producer(broker)


@pytest.fixture(autouse=True)
def _real_kafka_or_fail(request: pytest.FixtureRequest) -> None:
    """A `real_kafka` test fails on a broker without Apache Kafka's semantics: never a skip.

    Such tests are deselected by default (pyproject's addopts); `-m real_kafka` selects them,
    and then ROOMHOOKS_TEST_KAFKA must name an Apache Kafka (or a Docker engine must answer).
    """
    if request.node.get_closest_marker("real_kafka") is None:
        return
    if not request.getfixturevalue("broker_grants_idempotence"):
        pytest.fail(
            f"real_kafka: the broker at {request.getfixturevalue('broker')} does not grant an "
            "idempotent producer (the dev broker?): set ROOMHOOKS_TEST_KAFKA to an Apache Kafka"
        )


@pytest.fixture
async def kafka_settings(broker: str, broker_grants_idempotence: bool) -> KafkaSettings:
    """Topics of this test's own (a fresh namespace), created, on the shared broker; an
    idempotent producer wherever the broker grants one (KAFKA_IDEMPOTENT_PRODUCER in
    production)."""
    settings = KafkaSettings(
        bootstrap_servers=broker,
        topic_namespace=f"t{uuid.uuid4().hex[:12]}",
        partitions=3,
        session_timeout_ms=2000,
        idempotent_producer=broker_grants_idempotence,
        # Only Tansu denies an idempotent producer, and only Tansu needs the gap recheck.
        gap_recheck_ms=0 if broker_grants_idempotence else TANSU_GAP_RECHECK_MS,
    )
    await ensure_topics(settings)
    return settings


@pytest.fixture
def topics(kafka_settings: KafkaSettings) -> Topics:
    return Topics.from_settings(kafka_settings)
