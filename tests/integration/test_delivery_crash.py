"""SIGKILL the delivery process mid-flight: nothing is lost, duplicates keep their webhook-id."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from tests.support.deliveries import create_webhook, request_deliveries
from tests.support.polling import eventually
from tests.support.processes import delivery_process
from tests.support.receiver import Receiver, Script

pytestmark = pytest.mark.integration

WEBHOOKS = 4
PER_WEBHOOK = 60


async def test_killed_delivery_process_loses_nothing(
    registry, producer, topics, pool, database_url, broker, kafka_settings, tmp_path
):
    receiver = Receiver()
    await receiver.start()
    delivery = delivery_process(
        tmp_path,
        database_url=database_url,
        bootstrap=broker,
        namespace=kafka_settings.topic_namespace,
        ROOMHOOKS_DELIVERY_TIMEOUT_S="2",
        ROOMHOOKS_DELIVERY_LEASE_S="4",
        ROOMHOOKS_DELIVERY_RETRY_SCHEDULE="1,1,1",
        ROOMHOOKS_DELIVERY_PER_WEBHOOK_CONCURRENCY="2",
    )
    try:
        webhooks = [
            await create_webhook(registry, receiver.script(f"/w{n}", Script(delay_s=0.02)))
            for n in range(WEBHOOKS)
        ]
        expected = set()
        for webhook in webhooks:
            events = (f"event-{i}" for i in range(PER_WEBHOOK))
            expected |= set(await request_deliveries(producer, topics.deliveries, webhook, events))

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
