"""The delivery service on a real broker, Postgres and HTTP receiver."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook as StandardWebhook

from services.delivery.app import Delivery
from services.delivery.settings import DeliverySettings
from services.registry.app import WEBHOOKS
from services.registry.commands import consume_commands
from shared.kafka import JSON_HEADERS, dumps, make_consumer
from shared.signing import hex_signature
from tests.support.deliveries import delivery_request, running_delivery, send_request
from tests.support.polling import eventually
from tests.support.receiver import Script

pytestmark = pytest.mark.integration


def delivery_settings(postgres_settings, kafka_settings, **overrides) -> DeliverySettings:
    return DeliverySettings(
        postgres=postgres_settings,
        kafka=kafka_settings,
        health_port=0,
        scheduler_interval_s=0.1,
        **overrides,
    )


@pytest.fixture
async def delivery(postgres_settings, kafka_settings) -> AsyncIterator[Delivery]:
    async with running_delivery(postgres_settings, kafka_settings) as service:
        yield service


class Harness:
    def __init__(self, registry, producer, topics, pool, receiver):
        self.registry, self.producer, self.topics = registry, producer, topics
        self.pool, self.receiver = pool, receiver

    async def webhook(self, path: str, script: Script | None = None, **fields) -> dict:
        url = self.receiver.script(path, script or Script())
        body = {"url": url, "events": ["participant.joined"], **fields}
        r = self.registry
        resp = await r.http.post(r.webhooks_url(r.alice), json=body, headers=r.alice.auth())
        assert resp.status == 201, await resp.text()
        return (await resp.json())["data"]["webhook"]

    async def request(self, webhook: dict, event_id: str | None = None, body: str | None = None):
        event_id = event_id or str(uuid.uuid4())
        body = body or json.dumps(
            {"id": event_id, "event": "participant.joined", "data": {"roomId": "r1"}},
            separators=(",", ":"),
        )
        message = delivery_request(webhook, event_id, body=body)
        await (await send_request(self.producer, self.topics.deliveries, message))
        return message

    async def row(self, delivery_id: str):
        return await self.pool.fetchrow(
            "SELECT * FROM delivery.deliveries WHERE id = $1", uuid.UUID(delivery_id)
        )

    async def final(self, delivery_id: str, timeout_s: float = 20):
        async def done():
            row = await self.row(delivery_id)
            return row if row is not None and row["status"] != "pending" else None

        return await eventually(done, timeout_s=timeout_s)

    async def api_delivery(self, webhook: dict, delivery_id: str) -> dict:
        r = self.registry
        url = r.webhooks_url(r.alice, webhook["id"]) + f"/deliveries/{delivery_id}"
        resp = await r.http.get(url, headers=r.alice.auth())
        assert resp.status == 200
        return (await resp.json())["data"]


@pytest.fixture
def harness(registry, producer, topics, pool, receiver) -> Harness:
    return Harness(registry, producer, topics, pool, receiver)


async def test_a_delivery_is_a_signed_post_recorded_as_success(harness, delivery):
    webhook = await harness.webhook("/ok")
    body = '{"id":"e1","event":"participant.joined","room":{"id":"r1","name":"Zoé 日本"}}'
    message = await harness.request(webhook, event_id="e1", body=body)
    row = await harness.final(message.delivery_id)

    [got] = harness.receiver.received["/ok"]
    assert got.body == body.encode()
    secret = webhook["secret"]
    assert got.headers["X-Webhook-Signature"] == hex_signature(secret, body.encode())
    StandardWebhook(secret).verify(got.body, got.headers)
    assert got.headers["webhook-id"] == message.delivery_id
    assert got.headers["X-Webhook-Event"] == "participant.joined"
    assert got.headers["X-Webhook-Delivery"] == message.delivery_id
    assert got.headers["X-Webhook-Attempt"] == "1"
    assert got.headers["User-Agent"].startswith("roomhooks/")
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["Accept-Encoding"] == "identity"  # an answer we can show as it is

    assert row["status"] == "success" and row["attempts"] == 1 and row["status_code"] == 200
    assert row["next_attempt_at"] is None
    data = await harness.api_delivery(webhook, message.delivery_id)
    assert data["delivery"]["payload"] == body
    assert data["delivery"]["next_retry_at"] is None
    [attempt] = data["attempts"]
    assert attempt["status_code"] == 200 and attempt["response_body"] == "ok"


async def test_the_same_request_twice_makes_one_delivery(harness, delivery):
    webhook = await harness.webhook("/once")
    first = await harness.request(webhook, event_id="same")
    await harness.request(webhook, event_id="same")
    await harness.final(first.delivery_id)
    other = await harness.request(webhook, event_id="later")
    await harness.final(other.delivery_id)
    bodies = [json.loads(r.body)["id"] for r in harness.receiver.received["/once"]]
    assert sorted(bodies) == ["later", "same"]


# The service's schedule, scaled down from the default 1-5-30 s (whose arithmetic
# tests/unit/test_delivery_policy.py checks): steps far enough apart that each gap's lower
# bound tells them apart, and the test waits ~2 s instead of 36 s.
SHORT_SCHEDULE = (0.2, 0.5, 1.5)


async def test_500_is_retried_on_the_services_schedule_then_failed(
    harness, postgres_settings, kafka_settings
):
    schedule = list(SHORT_SCHEDULE)
    async with running_delivery(postgres_settings, kafka_settings, retry_schedule=schedule):
        webhook = await harness.webhook("/broken", Script(statuses=[500]))
        message = await harness.request(webhook)
        row = await harness.final(message.delivery_id)
    assert row["status"] == "failed" and row["attempts"] == 4 and row["status_code"] == 500
    assert row["next_attempt_at"] is None

    received = harness.receiver.received["/broken"]
    assert [r.headers["X-Webhook-Attempt"] for r in received] == ["1", "2", "3", "4"]
    assert {r.headers["webhook-id"] for r in received} == {message.delivery_id}
    assert len({r.body for r in received}) == 1  # byte-identical on every attempt
    gaps = [b.at - a.at for a, b in itertools.pairwise(received)]
    for gap, scheduled in zip(gaps, SHORT_SCHEDULE, strict=True):  # each step ±20 % (jitter)
        assert scheduled * 0.8 - 0.05 <= gap < scheduled * 1.2 + 5, gaps
    data = await harness.api_delivery(webhook, message.delivery_id)
    assert data["delivery"]["status"] == "failed" and data["delivery"]["attempts"] == 4
    assert data["delivery"]["next_retry_at"] is None
    assert [a["attempt"] for a in data["attempts"]] == [1, 2, 3, 4]


async def test_an_endpoint_that_recovers_ends_success_after_three_attempts(harness, delivery):
    webhook = await harness.webhook(
        "/flaky", Script(statuses=[500, 503, 200]), retrySchedule=[1, 1, 1]
    )
    message = await harness.request(webhook)
    row = await harness.final(message.delivery_id)
    assert row["status"] == "success" and row["attempts"] == 3


async def test_retry_after_is_honoured(harness, delivery):
    webhook = await harness.webhook(
        "/busy", Script(statuses=[429, 200], headers={"Retry-After": "3"}), retrySchedule=[1]
    )
    message = await harness.request(webhook)
    await harness.final(message.delivery_id)
    first, second = harness.receiver.received["/busy"]
    assert second.at - first.at >= 2.95


async def test_410_gone_disables_the_webhook(harness, delivery, kafka_settings, topics, registry):
    commands = make_consumer(
        kafka_settings, topics.registry_commands, group_id=topics.group("registry")
    )
    await commands.start()
    applying = asyncio.create_task(consume_commands(commands, registry.app[WEBHOOKS]))
    try:
        webhook = await harness.webhook("/gone", Script(statuses=[410]))
        message = await harness.request(webhook)
        row = await harness.final(message.delivery_id)
        assert row["status"] == "failed" and row["attempts"] == 1 and row["status_code"] == 410
        assert row["last_error"] == "HTTP 410 Gone: the webhook is disabled"
        url = registry.webhooks_url(registry.alice, webhook["id"])

        async def disabled():
            resp = await registry.http.get(url, headers=registry.alice.auth())
            return (await resp.json())["data"]["webhook"]["enabled"] is False

        await eventually(disabled, timeout_s=15)
        resp = await registry.http.get(url, headers=registry.alice.auth())
        assert "410" in (await resp.json())["data"]["webhook"]["disabled_reason"]
    finally:
        applying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await applying
        await commands.stop()


async def test_a_disabled_webhook_gets_nothing_and_holds_the_delivery(harness, delivery, registry):
    webhook = await harness.webhook("/off")
    url = registry.webhooks_url(registry.alice, webhook["id"])
    await registry.http.patch(url, json={"enabled": False}, headers=registry.alice.auth())
    message = await harness.request(webhook)

    async def held():
        row = await harness.row(message.delivery_id)
        return row if row is not None and row["next_attempt_at"] is None else None

    row = await eventually(held)
    assert (row["status"], row["attempts"], row["lease_until"]) == ("pending", 0, None)
    assert harness.receiver.received["/off"] == []


async def test_redeliver_makes_a_new_attempt_after_failure(harness, delivery, registry):
    webhook = await harness.webhook("/later", Script(statuses=[500, 200]), retrySchedule=[])
    message = await harness.request(webhook)
    assert (await harness.final(message.delivery_id))["status"] == "failed"
    url = registry.webhooks_url(registry.alice, webhook["id"])
    resp = await registry.http.post(
        f"{url}/deliveries/{message.delivery_id}/redeliver", headers=registry.alice.auth()
    )
    assert resp.status == 202
    await registry.relay.publish_pending()

    async def succeeded():
        row = await harness.row(message.delivery_id)
        return row["status"] == "success"

    await eventually(succeeded, timeout_s=15)
    row = await harness.row(message.delivery_id)
    assert row["attempts"] == 2
    assert [r.headers["X-Webhook-Attempt"] for r in harness.receiver.received["/later"]] == [
        "1",
        "2",
    ]


async def test_test_ping_goes_through_the_delivery_path(harness, delivery, registry):
    webhook = await harness.webhook("/ping")
    url = registry.webhooks_url(registry.alice, webhook["id"])
    resp = await registry.http.post(f"{url}/test", headers=registry.alice.auth())
    assert resp.status == 202
    queued = (await resp.json())["data"]
    await registry.relay.publish_pending()
    row = await harness.final(queued["delivery_id"])
    assert row["status"] == "success"
    [got] = harness.receiver.received["/ping"]
    payload = json.loads(got.body)
    assert payload["event"] == "webhook.test" and payload["id"] == queued["event_id"]
    assert payload["webhook"]["id"] == webhook["id"]
    assert got.headers["X-Webhook-Signature"] == hex_signature(webhook["secret"], got.body)


async def test_a_dead_endpoint_does_not_hold_back_a_healthy_one(harness, delivery):
    dead = await harness.webhook("/dead", Script(hang=True))
    healthy = await harness.webhook("/healthy")
    for _ in range(40):
        await harness.request(dead)
    started = asyncio.get_running_loop().time()
    messages = [await harness.request(healthy) for _ in range(40)]
    for message in messages:
        assert (await harness.final(message.delivery_id, timeout_s=20))["status"] == "success"
    elapsed = asyncio.get_running_loop().time() - started
    # Generous: the dead endpoint's 2 s timeouts, taken in turn, would need over 10 s.
    assert elapsed < 10, elapsed
    assert len(harness.receiver.received["/healthy"]) == 40


async def test_the_ssrf_guard_refuses_loopback_in_production(
    harness, postgres_settings, kafka_settings
):
    service = Delivery(delivery_settings(postgres_settings, kafka_settings, allow_loopback=False))
    await service.start()
    try:
        webhook = await harness.webhook("/internal")
        message = await harness.request(webhook)
        row = await harness.final(message.delivery_id)
        assert row["status"] == "failed" and "SSRF" in row["last_error"]
        assert harness.receiver.received["/internal"] == []
    finally:
        await service.stop()


async def test_the_delivery_log_lists_newest_first_and_filters_by_status(
    harness, delivery, registry
):
    good = await harness.webhook("/log", Script(statuses=[200, 500]), retrySchedule=[])
    first = await harness.request(good)
    await harness.final(first.delivery_id)
    second = await harness.request(good)
    await harness.final(second.delivery_id)
    url = registry.webhooks_url(registry.alice, good["id"]) + "/deliveries"
    auth = registry.alice.auth()
    listed = (await (await registry.http.get(url, headers=auth)).json())["data"]
    assert [d["id"] for d in listed["deliveries"]] == [second.delivery_id, first.delivery_id]
    failed = await registry.http.get(url, params={"status": "failed"}, headers=auth)
    assert [d["id"] for d in (await failed.json())["data"]["deliveries"]] == [second.delivery_id]
    page = await (await registry.http.get(url, params={"limit": "1"}, headers=auth)).json()
    assert page["data"]["next_cursor"]
    bad = await registry.http.get(url, params={"status": "maybe"}, headers=auth)
    assert bad.status == 400
    # Another account sees neither the webhook's log nor its deliveries.
    other = await registry.http.get(url, headers=registry.bob.auth())
    assert other.status == 403
    bob_url = registry.webhooks_url(registry.bob, good["id"]) + "/deliveries"
    assert (await registry.http.get(bob_url, headers=registry.bob.auth())).status == 404


async def test_a_deleted_webhook_gets_nothing_and_the_delivery_says_why(
    harness, delivery, registry
):
    webhook = await harness.webhook("/deleted")
    url = registry.webhooks_url(registry.alice, webhook["id"])
    assert (await registry.http.delete(url, headers=registry.alice.auth())).status == 200
    message = await harness.request(webhook)
    row = await harness.final(message.delivery_id)
    assert row["status"] == "failed" and row["last_error"] == "webhook deleted"
    assert harness.receiver.received["/deleted"] == []


async def test_a_malformed_request_is_skipped_and_the_next_one_still_delivered(harness, delivery):
    webhook = await harness.webhook("/after-bad")
    bad = {
        "type": "deliver",
        "delivery_id": "not-a-uuid",
        "webhook_id": webhook["id"],
        "organization_id": webhook["organization_id"],
        "event_id": "e-bad",
        "event": "participant.joined",
        "body": "{}",
        "created_at": datetime.now(UTC).isoformat(),
    }
    await harness.producer.send_and_wait(
        harness.topics.deliveries, dumps(bad), key=webhook["id"].encode(), headers=JSON_HEADERS
    )
    good = await harness.request(webhook)  # same key, so the same partition, after the bad one
    row = await harness.final(good.delivery_id)
    assert row["status"] == "success"
    assert [json.loads(r.body)["id"] for r in harness.receiver.received["/after-bad"]] == [
        good.event_id
    ]
