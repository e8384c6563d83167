"""The registry served over real HTTP on a real Postgres and broker, for integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

import asyncpg
import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from aiokafka import AIOKafkaProducer

from services.fanout.app import Fanout
from services.fanout.settings import FanoutSettings
from services.registry.app import ACCOUNTS, RELAY, RegistryDeps, create_app
from services.registry.code_check import deno_code_check
from services.registry.outbox import OutboxRelay
from services.registry.policy import Role
from services.registry.settings import RegistrySettings
from shared.kafka import make_producer
from shared.settings import KafkaSettings, PostgresSettings
from tests.support.devstack import clean_environ
from tests.support.receiver import Receiver


@dataclass
class Account:
    id: str
    owner: str
    admin: str
    member: str

    def auth(self, role: Role = Role.OWNER) -> dict[str, str]:
        token = {Role.OWNER: self.owner, Role.ADMIN: self.admin, Role.MEMBER: self.member}[role]
        return {"Authorization": f"Bearer {token}"}


@dataclass
class Registry:
    url: str
    http: ClientSession
    app: web.Application
    relay: OutboxRelay
    alice: Account
    bob: Account

    def webhooks_url(self, account: Account | str, webhook_id: str | None = None) -> str:
        account_id = account if isinstance(account, str) else account.id
        base = f"{self.url}/v1/accounts/{account_id}/webhooks"
        return f"{base}/{webhook_id}" if webhook_id else base


@pytest.fixture
async def producer(kafka_settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    producer = make_producer(kafka_settings)
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture
def registry_settings(
    postgres_settings: PostgresSettings, kafka_settings: KafkaSettings
) -> RegistrySettings:
    """The dev profile's; a test module that needs others overrides this fixture."""
    return RegistrySettings(
        postgres=postgres_settings, kafka=kafka_settings, allowed_http_hosts=None
    )


@pytest.fixture
async def registry(
    pool: asyncpg.Pool, producer: AIOKafkaProducer, registry_settings: RegistrySettings
) -> AsyncIterator[Registry]:
    """The registry app with two accounts (alice, bob), each with an OWNER/ADMIN/MEMBER key.

    The outbox relay is not running: tests call `registry.relay.publish_pending()`.
    """
    app = create_app(
        registry_settings,
        RegistryDeps(pool=pool, producer=producer, check_code=deno_code_check),
    )
    accounts = app[ACCOUNTS]

    async def account(name: str) -> Account:
        account_id = await accounts.create_account(name)
        keys = [await accounts.create_key(account_id, role) for role in Role]
        return Account(str(account_id), *keys)

    alice, bob = await account("alice"), await account("bob")
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    async with ClientSession() as http:
        yield Registry(str(server.make_url("")).rstrip("/"), http, app, app[RELAY], alice, bob)
    await server.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real HTTP endpoint for deliveries (tests/support/receiver.py), up for one test."""
    receiver = Receiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture
def cli_env(database_url: str, kafka_settings: KafkaSettings) -> dict[str, str]:
    return {
        **clean_environ(),
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "KAFKA_TOPIC_NAMESPACE": kafka_settings.topic_namespace,
    }


@pytest.fixture
def fanout_settings(
    kafka_settings: KafkaSettings, postgres_settings: PostgresSettings
) -> FanoutSettings:
    return FanoutSettings(
        kafka=kafka_settings,
        postgres=postgres_settings,
        health_port=0,
        poll_timeout_ms=100,
        batch_max_records=20,
    )


@pytest.fixture
async def start_fanout(fanout_settings: FanoutSettings) -> AsyncIterator:
    """Starts the service in-process when the test has prepared the topics; stops it after."""
    async with AsyncExitStack() as stack:

        async def start() -> Fanout:
            service = Fanout(fanout_settings)
            return await stack.enter_async_context(service)

        yield start
