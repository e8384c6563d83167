"""Malformed or unstorable delivery requests go to the deliveries DLQ once, with their reason,
and the consumer goes on with the requests after them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from services.delivery.app import Delivery
from shared.dead_letters import H_ERROR, H_OFFSET, H_TOPIC
from shared.kafka import JSON_HEADERS, dumps, make_consumer
from shared.messages import DeliveryRequested, delivery_id_for
from tests.support.deliveries import (
    create_webhook,
    delivery_request,
    running_delivery,
    send_request,
)
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def delivery(postgres_settings, kafka_settings) -> AsyncIterator[Delivery]:
    async with running_delivery(postgres_settings, kafka_settings) as service:
        yield service


def raw_request(webhook: dict, event_id: str, **fields) -> dict:
    return {
        "type": "deliver",
        "delivery_id": delivery_id_for(webhook["id"], event_id),
        "webhook_id": webhook["id"],
        "organization_id": webhook["organization_id"],
        "event_id": event_id,
        "event": "participant.joined",
        "body": "{}",
        "created_at": datetime.now(UTC).isoformat(),
        **fields,
    }


async def read_dead_letters(kafka_settings, topic: str, *, at_least: int) -> list:
    consumer = make_consumer(kafka_settings, topic, group_id=f"dlq-reader-{uuid.uuid4().hex}")
    await consumer.start()
    records: list = []
    try:

        async def enough():
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
            return len(records) >= at_least

        await eventually(enough, timeout_s=20)
        await asyncio.sleep(1)  # anything more than expected would arrive meanwhile
        for batch in (await consumer.getmany(timeout_ms=500)).values():
            records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def test_bad_requests_go_to_the_dlq_once_with_their_reason_and_the_next_is_delivered(
    delivery, registry, producer, topics, pool, receiver, kafka_settings
):
    webhook = await create_webhook(registry, receiver.url("/after-bad"))
    key = webhook["id"].encode()  # one key: one partition, in this order
    bad = [
        dumps(raw_request(webhook, "nul\x00id")),  # an event id Postgres text refuses
        dumps(raw_request(webhook, "ok-id", body='{"name":"a\x00b"}')),  # a body it refuses
        b'{"type": "deliver", "delivery_id": ',  # not JSON
        b'\xff\xfe{"not": "utf-8"}',
        # Well formed, but its id is another event's: stored, it would be a second delivery.
        dumps(raw_request(webhook, "ok-id", delivery_id=delivery_id_for(webhook["id"], "x"))),
    ]
    for value in bad:
        await producer.send_and_wait(topics.deliveries, value, key=key, headers=JSON_HEADERS)
    good = delivery_request(webhook, "good")
    await (await send_request(producer, topics.deliveries, good))

    async def delivered():
        row = await pool.fetchrow(
            "SELECT status FROM delivery.deliveries WHERE id = $1", uuid.UUID(good.delivery_id)
        )
        return row is not None and row["status"] == "success"

    await eventually(delivered, timeout_s=20)
    assert await pool.fetchval("SELECT count(*) FROM delivery.deliveries") == 1

    dead = await read_dead_letters(kafka_settings, topics.deliveries_dlq, at_least=len(bad))
    assert [record.value for record in dead] == bad  # each once, as received, in order
    reasons = [dict(record.headers)[H_ERROR].decode() for record in dead]
    assert reasons[0].startswith(
        "invalid delivery request: deliver.event_id: Value error, holds U+0000"
    )
    assert reasons[1].startswith(
        "invalid delivery request: deliver.body: Value error, holds U+0000"
    )
    assert reasons[4].startswith(
        "invalid delivery request: deliver: Value error, delivery_id: not UUIDv5(webhook_id,"
    )
    assert all(reason.startswith("invalid delivery request: ") for reason in reasons)
    assert {dict(record.headers)[H_TOPIC].decode() for record in dead} == {topics.deliveries}
    assert len({dict(record.headers)[H_OFFSET] for record in dead}) == len(bad)
    poisoned = delivery.metrics_registry.get_sample_value(
        "roomhooks_poison_inputs_total", {"service": "delivery", "kind": "invalid_request"}
    )
    assert poisoned == len(bad)
    readiness = await delivery.readiness()
    assert readiness["consuming"] == readiness["recorder"] == "ok", readiness


async def test_a_request_postgres_refuses_is_set_aside_and_the_rest_of_its_batch_stored(
    delivery, registry
):
    # Validation refuses what it knows Postgres refuses; anything else Postgres refuses
    # (here: a NUL let through by building the message unvalidated) is found by halves.
    webhook = await create_webhook(registry, "http://127.0.0.1:9/unused")
    messages = [delivery_request(webhook, f"fine-{n}") for n in range(7)]
    messages[4] = DeliveryRequested.model_construct(
        **{**messages[4].model_dump(), "delivery_id": str(uuid.uuid4()), "event_id": "bad\x00"}
    )
    tp = TopicPartition("t", 0)
    parsed = [
        (message, tp, ConsumerRecord("t", 0, 10 + n, 0, 0, None, b"v", None, 0, 1, []))
        for n, message in enumerate(messages)
    ]
    jobs, refused = await delivery.requests.store(parsed)
    assert sorted(job.event_id for job in jobs) == [f"fine-{n}" for n in range(7) if n != 4]
    [(_, record, reason, kind)] = refused
    assert kind == "unstorable_request"
    assert record.offset == 14
    assert reason.startswith("delivery request not storable: CharacterNotInRepertoireError")
