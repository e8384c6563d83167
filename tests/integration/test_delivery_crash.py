"""SIGKILL the delivery process mid-flight: nothing is lost, duplicates keep their webhook-id."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime

import pytest

from shared.kafka import JSON_HEADERS, dumps
from shared.messages import DeliveryRequested, delivery_id_for
from tests.support.polling import eventually
from tests.support.processes import ServiceProcess, service_env
from tests.support.receiver import Receiver, Script

pytestmark = pytest.mark.integration

WEBHOOKS = 4
PER_WEBHOOK = 60


async def test_killed_delivery_process_loses_nothing(
    registry, producer, topics, pool, database_url, broker, kafka_settings, tmp_path
):
    receiver = Receiver()
    await receiver.start()
    env = service_env(
        database_url=database_url,
        bootstrap=broker,
        namespace=kafka_settings.topic_namespace,
        ROOMHOOKS_DELIVERY_HEALTH_PORT="0",
        ROOMHOOKS_DELIVERY_TIMEOUT_S="2",
        ROOMHOOKS_DELIVERY_LEASE_S="4",
        ROOMHOOKS_DELIVERY_RETRY_SCHEDULE="1,1,1",
        ROOMHOOKS_DELIVERY_PER_WEBHOOK_CONCURRENCY="2",
    )
    delivery = ServiceProcess("delivery", env, tmp_path)
    try:
        webhooks = []
        for n in range(WEBHOOKS):
            url = receiver.script(f"/w{n}", Script(statuses=[200], delay_s=0.02))
            resp = await registry.http.post(
                registry.webhooks_url(registry.alice),
                json={"url": url, "events": ["participant.joined"]},
                headers=registry.alice.auth(),
            )
            webhooks.append((await resp.json())["data"]["webhook"])

        expected = set()
        for i in range(PER_WEBHOOK):
            for webhook in webhooks:
                event_id = f"event-{i}"
                message = DeliveryRequested(
                    delivery_id=delivery_id_for(webhook["id"], event_id),
                    webhook_id=webhook["id"],
                    organization_id=webhook["organization_id"],
                    event_id=event_id,
                    event="participant.joined",
                    body=json.dumps({"id": event_id, "n": i}),
                    created_at=datetime.now(UTC),
                )
                expected.add(message.delivery_id)
                await producer.send(
                    topics.deliveries,
                    dumps(message.model_dump(mode="json")),
                    key=webhook["id"].encode(),
                    headers=JSON_HEADERS,
                )
        await producer.flush()

        delivery.start()
        received = lambda: sum(len(r) for r in receiver.received.values())  # noqa: E731

        async def some_arrived():
            return received() >= 40

        await eventually(some_arrived, timeout_s=30)
        delivery.kill()
        killed_at = received()
        assert killed_at < len(expected), "the kill came too late to test anything"
        delivery.start()

        async def all_succeeded():
            return await pool.fetchval(
                "SELECT count(*) FROM delivery.deliveries WHERE status = 'success'"
            ) == len(expected)

        await eventually(all_succeeded, timeout_s=90, interval_s=0.5)
        ids = Counter(r.headers["webhook-id"] for rs in receiver.received.values() for r in rs)
        assert set(ids) == expected  # every delivery reached the receiver
        duplicates = {k: v for k, v in ids.items() if v > 1}
        print(f"delivered {len(expected)}, duplicates {len(duplicates)} (same webhook-id)")
        for rs in receiver.received.values():
            for r in rs:
                assert r.headers["X-Webhook-Delivery"] == r.headers["webhook-id"]
        stored = await pool.fetchval("SELECT count(*) FROM delivery.deliveries")
        assert stored == len(expected)
    finally:
        delivery.stop()
        await receiver.stop()
        await asyncio.sleep(0)
