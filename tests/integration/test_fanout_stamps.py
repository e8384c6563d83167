"""An event fanout reads again (it stopped before committing) is stamped as the first time: its
delivery request carries the same created_at, and the event log, keyed on (id, received_at),
keeps one row, in the day's partition (real broker, real Postgres)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.fanout.app import Fanout
from shared.events import format_timestamp, parse_event
from shared.kafka import Topics, dumps
from shared.messages import DeliveryRequested, delivery_id_for
from shared.settings import KafkaSettings
from tests.integration.test_fanout_pipeline import (
    ROOM_1,
    committed_offsets,
    hook,
    publish_event,
    put_registry,
    room_event,
    stamp_of,
)
from tests.support.kafka import read_topic
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


async def rewind(settings: KafkaSettings, topics: Topics, partition: int) -> None:
    """Commit the fanout group back to the start of `partition`: as if fanout had produced
    and recorded its batch, then stopped before committing it."""
    consumer = AIOKafkaConsumer(
        topics.events,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=topics.group("fanout"),
        enable_auto_commit=False,
        session_timeout_ms=settings.session_timeout_ms,
    )
    await consumer.start()
    try:

        async def joined() -> bool:  # a member of the group may commit for it
            await consumer.getmany(timeout_ms=100)
            return bool(consumer.assignment())

        await eventually(joined)
        await consumer.commit({TopicPartition(topics.events, partition): 0})
    finally:
        await consumer.stop()


async def test_an_event_read_again_is_stamped_and_logged_the_same(
    producer, kafka_settings, topics, fanout_settings, pool
):
    org = str(uuid.uuid4())
    webhook = hook(org, ["session.started"])
    await put_registry(producer, topics, webhook)
    event = room_event("session.started", org, ROOM_1)
    published = await publish_event(producer, topics, event)

    async def committed() -> bool:
        offsets = await committed_offsets(kafka_settings, topics)
        assert offsets[published.partition] == published.offset + 1
        return True

    async with Fanout(fanout_settings):
        await eventually(committed)
    await rewind(kafka_settings, topics, published.partition)
    assert (await committed_offsets(kafka_settings, topics))[published.partition] == 0
    async with Fanout(fanout_settings):  # its clock has moved on; the record's stamp has not
        await eventually(committed)

    records = await read_topic(kafka_settings, topics.deliveries, at_least=2)
    requests = [DeliveryRequested.model_validate_json(r.value) for r in records]
    delivery_id = delivery_id_for(webhook.id, event["id"])
    assert [(r.delivery_id, r.created_at) for r in requests] == [
        (delivery_id, stamp_of(published))
    ] * 2
    rows = await pool.fetch(
        "SELECT received_at, tableoid::regclass::text AS partition FROM events.events"
        " WHERE event_id = $1",
        event["id"],
    )
    stamp = stamp_of(published)
    assert [tuple(r) for r in rows] == [(stamp, f"events.events_p{stamp:%Y%m%d}")]


async def test_an_event_a_producer_publishes_twice_is_logged_once_with_its_own_time(
    producer, kafka_settings, topics, fanout_settings, pool
):
    """A room service that retries a publish after a timeout sends one event in two records:
    both are stamped with the event's own time, so the log keeps one row and both delivery
    requests carry one created_at (the delivery store then keeps one delivery)."""
    org = str(uuid.uuid4())
    webhook = hook(org, ["session.started"])
    await put_registry(producer, topics, webhook)
    event = room_event("session.started", org, ROOM_1)
    event["timestamp"] = format_timestamp(datetime.now(UTC) - timedelta(seconds=2))
    first = await publish_event(producer, topics, event)
    await asyncio.sleep(0.05)  # the retry's record gets a later timestamp
    again = await publish_event(producer, topics, event)
    assert stamp_of(again) > stamp_of(first)

    async with Fanout(fanout_settings):
        records = await read_topic(kafka_settings, topics.deliveries, at_least=2)
    happened = parse_event(dumps(event)).timestamp
    requests = [DeliveryRequested.model_validate_json(r.value) for r in records]
    assert [r.created_at for r in requests] == [happened] * 2

    async def logged_once() -> bool:
        rows = await pool.fetch(
            "SELECT received_at FROM events.events WHERE event_id = $1", event["id"]
        )
        assert [r["received_at"] for r in rows] == [happened]
        return True

    await eventually(logged_once)
