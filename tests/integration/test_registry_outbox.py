"""Every registry change reaches Kafka through the outbox, on the real broker."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest

from services.registry.app import WEBHOOKS
from services.registry.outbox import OutboxRelay
from shared.events import parse_event
from shared.messages import WebhookRecord
from tests.support.kafka import read_topic
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

BODY = {"url": "http://127.0.0.1:9999/hook", "events": ["participant.joined", "webhook.created"]}


async def test_each_change_publishes_the_public_record_and_delete_a_tombstone(
    registry, kafka_settings, topics, pool
):
    r, alice = registry, registry.alice
    resp = await r.http.post(r.webhooks_url(alice), json=BODY, headers=alice.auth())
    created = (await resp.json())["data"]["webhook"]
    url = r.webhooks_url(alice, created["id"])
    await r.http.patch(url, json={"enabled": False}, headers=alice.auth())
    await r.http.put(url, json={**BODY, "name": "renamed"}, headers=alice.auth())
    await r.http.delete(url, headers=alice.auth())

    while await r.relay.publish_pending():
        pass
    assert await pool.fetchval("SELECT count(*) FROM registry.outbox") == 0

    records = await read_topic(kafka_settings, topics.registry, at_least=4)
    assert {rec.key for rec in records} == {f"webhook:{created['id']}".encode()}
    assert len({rec.partition for rec in records}) == 1  # one key, one partition: ordered
    *updates, tombstone = records
    assert tombstone.value is None
    parsed = [WebhookRecord.model_validate_json(rec.value) for rec in updates]
    assert [p.revision for p in parsed] == [1, 2, 3]
    assert [p.enabled for p in parsed] == [True, False, True]
    assert parsed[-1].name == "renamed"
    assert parsed[0].organization_id == alice.id
    assert all(created["secret"] not in rec.value.decode() for rec in updates)
    assert updates[0].headers["content-type"] == b"application/json"


async def test_creating_a_webhook_emits_the_webhook_created_organization_event(
    registry, kafka_settings, topics
):
    r, alice = registry, registry.alice
    resp = await r.http.post(r.webhooks_url(alice), json=BODY, headers=alice.auth())
    created = (await resp.json())["data"]["webhook"]
    await r.relay.publish_pending()

    [record] = await read_topic(kafka_settings, topics.events, at_least=1)
    assert record.key == alice.id.encode()
    event = parse_event(record.value)
    assert event.event == "webhook.created"
    assert event.organization_id == alice.id
    payload = json.loads(record.value)
    assert payload["room"] is None
    assert payload["webhook"]["id"] == created["id"]
    assert "secret" not in payload["webhook"]


async def test_running_relay_publishes_committed_changes_promptly(
    registry, kafka_settings, topics, pool
):
    r, alice = registry, registry.alice
    relay = asyncio.create_task(r.relay.run())
    try:
        resp = await r.http.post(r.webhooks_url(alice), json=BODY, headers=alice.auth())
        assert resp.status == 201

        async def drained() -> bool:
            return await pool.fetchval("SELECT count(*) FROM registry.outbox") == 0

        await eventually(drained, timeout_s=10)
        records = await read_topic(kafka_settings, topics.registry, at_least=1)
        assert len(records) == 1
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay


async def test_a_failed_publish_keeps_the_rows_for_the_next_pass(registry, pool, producer):
    r, alice = registry, registry.alice
    await r.http.post(r.webhooks_url(alice), json=BODY, headers=alice.auth())
    await producer.stop()  # the broker is unreachable for this relay now
    with pytest.raises(Exception):  # noqa: B017 - whichever Kafka error aiokafka raises
        await r.relay.publish_pending()
    assert await pool.fetchval("SELECT count(*) FROM registry.outbox") == 2


async def test_republish_announces_every_webhook_again(registry, kafka_settings, topics):
    r = registry
    for account in (r.alice, r.bob):
        await r.http.post(r.webhooks_url(account), json=BODY, headers=account.auth())
    while await r.relay.publish_pending():
        pass
    assert await r.app[WEBHOOKS].republish_all() == 2
    while await r.relay.publish_pending():
        pass
    records = await read_topic(kafka_settings, topics.registry, at_least=4)
    keys = [rec.key for rec in records]
    assert len(keys) == 4 and len(set(keys)) == 2


async def test_a_relay_whose_listen_connection_was_cut_listens_again(
    registry, kafka_settings, topics, pool, producer, postgres_settings
):
    """As after a Postgres restart. The poll is an hour here: only NOTIFY can wake the relay,
    so a change published at all shows the relay listening again."""
    r, alice = registry, registry.alice
    relay = OutboxRelay(
        pool, producer, batch_size=100, poll_interval_s=3600, listen_dsn=postgres_settings.url
    )
    task = asyncio.create_task(relay.run())
    try:

        async def listeners() -> list[int]:
            return await pool.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND query ILIKE 'LISTEN %'"
            )

        [first] = await eventually(listeners, timeout_s=10)
        await pool.execute("SELECT pg_terminate_backend($1)", first["pid"])

        async def listening_again() -> bool:
            return [row["pid"] for row in await listeners()] not in ([], [first["pid"]])

        await eventually(listening_again, timeout_s=10)
        resp = await r.http.post(r.webhooks_url(alice), json=BODY, headers=alice.auth())
        assert resp.status == 201

        async def drained() -> bool:
            return await pool.fetchval("SELECT count(*) FROM registry.outbox") == 0

        await eventually(drained, timeout_s=10)
        assert len(await read_topic(kafka_settings, topics.registry, at_least=1)) == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
