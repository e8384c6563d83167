"""Publishing by hand as a room service would: one record on a topic, acknowledged by the
broker, and an event of an account that exists (`publish`, `trigger`, `state`)."""

from __future__ import annotations

import asyncio
import os
from typing import Any
from uuid import UUID

from devtool.cli_support import (
    EXIT_UNAVAILABLE,
    CliError,
    connections,
    one_line,
    postgres_pool,
)
from shared.events import parse_event
from shared.settings import KafkaSettings

BROKER_TIMEOUT_S = 30.0


async def send(kafka: KafkaSettings, topic: str, key: str, value: bytes | None) -> None:
    """Publish one record and wait for the broker's acknowledgement; exit 1 when unreachable."""
    # Here: only the publishing commands need aiokafka (cli_support.postgres_pool).
    from aiokafka.errors import KafkaError

    from shared.kafka import JSON_HEADERS, make_producer

    producer = make_producer(kafka)
    try:
        async with asyncio.timeout(BROKER_TIMEOUT_S):
            await producer.start()
            await producer.send_and_wait(
                topic, value=value, key=key.encode(), headers=JSON_HEADERS if value else None
            )
    except (KafkaError, OSError, TimeoutError) as exc:
        where = kafka.bootstrap_servers
        raise CliError(
            f"cannot publish to Kafka at {where} ({one_line(exc)})", EXIT_UNAVAILABLE
        ) from None
    finally:
        await producer.stop()


async def publish_event(account: UUID, event: dict[str, Any]) -> str:
    """Send a valid event of `account` (which must exist: exit 2) to the events topic, keyed
    by its room, else its organization, as room services key it; its id."""
    from services.registry import admin as registry_admin  # here: it loads the registry
    from shared.kafka import Topics, dumps

    parsed = parse_event(event)
    postgres, kafka = connections(os.environ)
    async with postgres_pool(postgres) as pool:
        if not await registry_admin.account_exists(pool, account):
            raise CliError(f"--account: no account {account}")
    key = parsed.room_id or parsed.organization_id
    await send(kafka, Topics.from_settings(kafka).events, key, dumps(event))
    return parsed.id
