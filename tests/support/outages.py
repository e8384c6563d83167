"""A `roomhooks dev` stack with a webhook on a local receiver, for tests that take the broker
or Postgres away under it and check that the services carry on by themselves."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
import psutil
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from shared.events import build_event
from shared.kafka import JSON_HEADERS, Topics, dumps, make_producer
from shared.settings import KafkaSettings
from tests.support.devstack import Stack, children_of, command_line, dev_environ, ready_stack
from tests.support.polling import eventually
from tests.support.receiver import Receiver
from tests.support.services import free_port

SERVICES = ("registry", "fanout", "delivery", "workflow_runner")
HEALTH_SETTINGS = {
    "fanout": "ROOMHOOKS_FANOUT_HEALTH_PORT",
    "delivery": "ROOMHOOKS_DELIVERY_HEALTH_PORT",
    "workflow_runner": "ROOMHOOKS_WORKFLOWS_HEALTH_PORT",
}


@dataclass
class Platform:
    stack: Stack
    receiver: Receiver
    account: str
    health: dict[str, str]  # service -> its probe server's base URL

    @property
    def bootstrap(self) -> str:
        return self.stack.run_env()["KAFKA_BOOTSTRAP_SERVERS"]

    def processes(self) -> dict[str, psutil.Process]:
        """Each service's process (and the broker's, as "broker"), by name."""
        found = {}
        for child in children_of(self.stack.process.pid):
            line = command_line(child)
            for name in SERVICES:
                if f"services.{name}" in line:
                    found[name] = child
            if "tansu" in line and " broker " in line:
                found["broker"] = child
        return found

    def delivered(self) -> set[str]:
        """Event ids that reached the receiver."""
        return {json.loads(r.body)["id"] for r in self.receiver.received["/hook"]}

    async def delivered_and_recorded(self, database_url: str, event_ids: list[str]) -> bool:
        """Every event reached the receiver, and its delivery (the only webhook's, one per
        event) is recorded `success` in Postgres."""
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch(
                "SELECT status, count(*) FROM delivery.deliveries GROUP BY status"
            )
        finally:
            await conn.close()
        return set(event_ids) <= self.delivered() and dict(rows) == {"success": len(event_ids)}

    async def fanout_holds_the_webhook(self) -> bool:
        """Events published before fanout's index has the webhook would match nothing."""
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
                session.get(f"{self.health['fanout']}/metrics") as response,
            ):
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError):
            return False
        return 'roomhooks_fanout_index_webhooks{state="enabled"} 1.0' in text

    async def readiness(self, service: str) -> dict[str, str]:
        return await readiness(self.health[service])


async def readiness(base_url: str) -> dict[str, str]:
    """A probe server's /readyz `checks`, or {} when it does not answer."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
            session.get(f"{base_url}/readyz") as response,
        ):
            return (await response.json())["checks"]
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return {}


@contextlib.asynccontextmanager
async def platform(tmp_path: Path, database_url: str, **settings: str) -> AsyncIterator[Platform]:
    """`roomhooks dev` on `database_url`, ready, with one webhook for participant.joined;
    `settings` are passed to the services."""
    receiver = Receiver()
    await receiver.start()
    ports = {name: free_port() for name in HEALTH_SETTINGS}
    state_dir = tmp_path / "state"
    env = dev_environ(
        state_dir,
        DATABASE_URL=database_url,
        ROOMHOOKS_LOG_FORMAT="json",
        **{HEALTH_SETTINGS[name]: str(port) for name, port in ports.items()},
        **settings,
    )
    try:
        async with ready_stack(env, state_dir) as stack:
            run_env = stack.run_env()
            account = run_env["ROOMHOOKS_ACCOUNT_ID"]
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    f"{run_env['ROOMHOOKS_API_URL']}/v1/accounts/{account}/webhooks",
                    json={"url": receiver.url("/hook"), "events": ["participant.joined"]},
                    headers={"Authorization": f"Bearer {run_env['ROOMHOOKS_OWNER_TOKEN']}"},
                ) as response,
            ):
                assert response.status == 201, await response.text()
            health = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
            p = Platform(stack, receiver, account, health)
            await eventually(p.fanout_holds_the_webhook, timeout_s=30, interval_s=0.2)
            yield p
    finally:
        await receiver.stop()


def exit_codes(stack: Stack) -> dict[str, int]:
    """Each service's exit code, from the stack's `dev.child_stopped` log lines."""
    codes = {}
    for line in stack.stderr:
        if '"dev.child_stopped"' in line:
            entry = json.loads(line)
            if entry["child"] in SERVICES:
                codes[entry["child"]] = entry["code"]
    return codes


def joined_event(account: str, event_id: str) -> dict:
    return build_event(
        event="participant.joined",
        organization_id=account,
        room={"id": "c3003c93-60cf-4184-b85f-20be14d26dac", "name": "Outage drill"},
        user={"id": "user-001", "name": "Ada"},
        event_id=event_id,
        now=datetime.now(UTC),
    )


@contextlib.asynccontextmanager
async def event_producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = make_producer(KafkaSettings(bootstrap_servers=bootstrap, request_timeout_ms=5000))
    try:
        await producer.start()
        yield producer
    finally:
        await producer.stop()


async def publish(producer: AIOKafkaProducer, account: str, event_ids: list[str]) -> None:
    """Send `participant.joined` events with these ids; each acknowledged by the broker."""
    topic = Topics().events
    for event_id in event_ids:
        event = joined_event(account, event_id)
        await producer.send_and_wait(
            topic, dumps(event), key=event["room"]["id"].encode(), headers=JSON_HEADERS
        )


async def publish_when_accepted(bootstrap: str, account: str, event_ids: list[str]) -> None:
    """Publish once the broker takes events again (a new producer per try, as a room service
    reconnecting would)."""

    async def accepted() -> bool:
        try:
            async with event_producer(bootstrap) as producer:
                await publish(producer, account, event_ids)
        except KafkaError:
            return False
        return True

    await eventually(accepted, timeout_s=60, interval_s=0.5)
