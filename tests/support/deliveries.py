"""Delivery requests as fanout would emit them, for tests that drive the delivery service."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaProducer

from services.delivery.app import Delivery
from services.delivery.settings import DeliverySettings
from shared.kafka import JSON_HEADERS, dumps
from shared.messages import DeliveryRequested, delivery_id_for
from shared.settings import KafkaSettings, PostgresSettings


async def create_webhook(registry, url: str, **fields) -> dict:
    """A `participant.joined` webhook of alice's on `url` (and any other API `fields`),
    through the API; its record."""
    resp = await registry.http.post(
        registry.webhooks_url(registry.alice),
        json={"url": url, "events": ["participant.joined"], **fields},
        headers=registry.alice.auth(),
    )
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"]["webhook"]


# The stamp fanout gives an event is the same whenever the event comes again (its own time);
# a test that requests one event twice gets one stamp, as fanout would give it.
_STAMPS: dict[tuple[str, str], datetime] = {}


def delivery_request(
    webhook: dict,
    event_id: str,
    *,
    body: str | None = None,
    event: str = "participant.joined",
    created_at: datetime | None = None,
) -> DeliveryRequested:
    """The request fanout would emit for `webhook` (an API record) and this event."""
    return DeliveryRequested(
        delivery_id=delivery_id_for(webhook["id"], event_id),
        webhook_id=webhook["id"],
        organization_id=webhook["organization_id"],
        event_id=event_id,
        event=event,
        body=body if body is not None else json.dumps({"id": event_id}),
        created_at=created_at or _STAMPS.setdefault((webhook["id"], event_id), datetime.now(UTC)),
    )


async def send_request(producer: AIOKafkaProducer, topic: str, message: DeliveryRequested):
    """Hand `message` to the producer, keyed by its webhook as fanout keys it; the ack."""
    return await producer.send(
        topic,
        dumps(message.model_dump(mode="json")),
        key=message.webhook_id.encode(),
        headers=JSON_HEADERS,
    )


async def request_deliveries(
    producer: AIOKafkaProducer, topic: str, webhook: dict, event_ids: Iterable[str]
) -> list[str]:
    """One `DeliveryRequested` per event for `webhook` (an API record); returns their ids."""
    ids = []
    for event_id in event_ids:
        message = delivery_request(webhook, event_id)
        ids.append(message.delivery_id)
        await send_request(producer, topic, message)
    await producer.flush()
    return ids


async def statuses(pool: asyncpg.Pool) -> dict[str, str]:
    """Delivery id -> status, for every stored delivery."""
    rows = await pool.fetch("SELECT id::text, status FROM delivery.deliveries")
    return {row["id"]: row["status"] for row in rows}


@contextlib.asynccontextmanager
async def running_delivery(
    postgres: PostgresSettings, kafka: KafkaSettings, **overrides
) -> AsyncIterator[Delivery]:
    """The delivery service in-process, on the tests' profile (no probe port, a fast
    scheduler, 2 s attempts, 10 s leases) with `overrides`; stopped on exit."""
    profile = {"health_port": 0, "scheduler_interval_s": 0.1, "timeout_s": 2, "lease_s": 10}
    service = Delivery(DeliverySettings(postgres=postgres, kafka=kafka, **profile | overrides))
    await service.start()
    try:
        yield service
    finally:
        await service.stop()
