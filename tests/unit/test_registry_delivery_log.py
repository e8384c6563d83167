"""DeliveryLogService against the in-memory log: a webhook's deliveries in its own account,
and redelivery and test-ping orders through the outbox."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import timedelta

import pytest

from services.registry.deliveries.service import DeliveryLogService
from services.registry.errors import NotFound
from shared.kafka import Topics
from shared.messages import delivery_id_for
from tests.support.registry_contracts import T0, attempt_row, delivery_row, webhook_row
from tests.support.registry_fakes import FakeDeliveryLog

ACCOUNT = uuid.uuid4()
TOPICS = Topics()
HOOK = webhook_row(ACCOUNT, name="ci")


@pytest.fixture
def log() -> FakeDeliveryLog:
    log = FakeDeliveryLog()
    log.webhooks[HOOK.id] = HOOK
    return log


@pytest.fixture
def deliveries(log) -> DeliveryLogService:
    return DeliveryLogService(log, TOPICS, lambda: T0)


async def test_the_log_of_an_unknown_webhook_is_not_found(deliveries):
    with pytest.raises(NotFound):
        await deliveries.list(str(ACCOUNT), str(uuid.uuid4()), limit=5, status=None, cursor=None)
    with pytest.raises(NotFound):
        await deliveries.send_test(str(uuid.uuid4()), str(HOOK.id))


async def test_a_delivery_shows_its_attempts_and_a_retry_only_while_pending(deliveries, log):
    due = T0 + timedelta(seconds=5)
    retrying = replace(delivery_row(HOOK.id, status="pending"), next_attempt_at=due)
    failed = replace(delivery_row(HOOK.id, minute=1, status="failed"), next_attempt_at=due)
    log.record(ACCOUNT, retrying, attempt_row(2), attempt_row(1))
    log.record(ACCOUNT, failed)
    delivery, attempts = await deliveries.get(str(ACCOUNT), str(HOOK.id), str(retrying.id))
    assert delivery.next_retry_at == due
    assert [a.attempt for a in attempts] == [1, 2]
    page = await deliveries.list(str(ACCOUNT), str(HOOK.id), limit=5, status=None, cursor=None)
    assert [(d.id, d.next_retry_at) for d in page.deliveries] == [
        (str(failed.id), None),
        (str(retrying.id), due),
    ]


async def test_a_redelivery_is_an_order_keyed_by_the_webhook(deliveries, log):
    row = delivery_row(HOOK.id, status="failed")
    log.record(ACCOUNT, row)
    await deliveries.redeliver(str(ACCOUNT), str(HOOK.id), str(row.id).upper())
    [(topic, key, value)] = log.outbox
    assert (topic, key) == (TOPICS.deliveries, str(HOOK.id).encode())
    assert json.loads(value)["delivery_id"] == str(row.id)


async def test_redelivering_an_unknown_delivery_orders_nothing(deliveries, log):
    with pytest.raises(NotFound):
        await deliveries.redeliver(str(ACCOUNT), str(HOOK.id), str(uuid.uuid4()))
    assert log.outbox == []


async def test_a_test_ping_is_a_delivery_request_of_webhook_test(deliveries, log):
    delivery_id, event_id = await deliveries.send_test(str(ACCOUNT), str(HOOK.id))
    assert delivery_id == delivery_id_for(str(HOOK.id), event_id)
    [(topic, _, value)] = log.outbox
    order = json.loads(value)
    assert topic == TOPICS.deliveries and order["event"] == "webhook.test"
    assert json.loads(order["body"])["webhook"] == {
        "id": str(HOOK.id),
        "name": "ci",
        "url": HOOK.url,
    }
