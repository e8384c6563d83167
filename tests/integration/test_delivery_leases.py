"""No duplicate sends: a lease covers an attempt from its start, and one process never runs
two attempts of one delivery at once, even when a lease runs out under it."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from services.delivery.app import Delivery
from services.delivery.settings import DeliverySettings
from tests.support.deliveries import create_webhook, request_deliveries
from tests.support.polling import eventually
from tests.support.receiver import Script

pytestmark = pytest.mark.integration


@pytest.fixture
async def start_delivery(postgres_settings, kafka_settings) -> AsyncIterator:
    started: list[Delivery] = []

    async def start(**overrides) -> Delivery:
        service = Delivery(
            DeliverySettings(
                postgres=postgres_settings,
                kafka=kafka_settings,
                health_port=0,
                scheduler_interval_s=0.1,
                **overrides,
            )
        )
        await service.start()
        started.append(service)
        return service

    yield start
    for service in started:
        await service.stop()


async def all_final(pool, ids: list[str], timeout_s: float = 30):
    async def done():
        rows = await pool.fetch(
            "SELECT status, attempts FROM delivery.deliveries"
            " WHERE id = ANY($1::uuid[]) AND status <> 'pending'",
            [uuid.UUID(i) for i in ids],
        )
        return rows if len(rows) == len(ids) else None

    return await eventually(done, timeout_s=timeout_s, interval_s=0.1)


def sent_per_event(receiver, path: str) -> Counter[str]:
    return Counter(r.headers["webhook-id"] for r in receiver.received[path])


async def test_deliveries_waiting_in_a_slow_lane_past_their_lease_are_sent_once(
    start_delivery, registry, producer, topics, pool, receiver
):
    # One attempt at a time to this webhook, each taking 1 s: the fifth starts ~4 s after it
    # was leased, past the 3 s lease it was claimed with.
    await start_delivery(per_webhook_concurrency=1, timeout_s=2, lease_s=3)
    webhook = await create_webhook(
        registry, receiver.script("/slow", Script(delay_s=1.0)), retrySchedule=[]
    )
    ids = await request_deliveries(
        producer, topics.deliveries, webhook, [f"e{i}" for i in range(5)]
    )
    rows = await all_final(pool, ids)
    assert {(r["status"], r["attempts"]) for r in rows} == {("success", 1)}
    sent = sent_per_event(receiver, "/slow")
    assert set(sent) == set(ids) and set(sent.values()) == {1}, sent


async def test_a_delivery_claimed_again_while_its_attempt_runs_is_not_sent_twice(
    start_delivery, registry, producer, topics, pool, receiver
):
    await start_delivery(timeout_s=5, lease_s=30)
    webhook = await create_webhook(
        registry, receiver.script("/busy", Script(delay_s=2.0)), retrySchedule=[]
    )
    [delivery_id] = await request_deliveries(producer, topics.deliveries, webhook, ["e1"])
    await eventually(lambda: _received(receiver, "/busy"), timeout_s=15)
    # The attempt is running; its lease is taken away under it, so the scheduler claims the
    # delivery again (as it would after a lease ran out).
    await pool.execute(
        "UPDATE delivery.deliveries SET lease_until = now() - interval '1 second' WHERE id = $1",
        uuid.UUID(delivery_id),
    )
    [row] = await all_final(pool, [delivery_id])
    assert (row["status"], row["attempts"]) == ("success", 1)
    assert sent_per_event(receiver, "/busy") == {delivery_id: 1}


async def _received(receiver, path: str) -> bool:
    return bool(receiver.received[path])
