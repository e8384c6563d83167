"""Auto-disable on the fakes (tests/support/delivery_fakes.py): the sweep, alone and in the
upkeep's pass, orders the registry to disable each stale webhook once, with the reason, and
again after a failed order; the registry's disable announces `webhook.disabled` with the
public record."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.delivery.health_store import StaleWebhook
from services.delivery.upkeep import AutoDisable, stale_reason
from services.registry.webhooks.models import WebhookInput
from services.registry.webhooks.service import WebhookService
from shared.events import parse_event
from shared.kafka import Topics
from shared.secrets_box import SecretsBox, generate_key
from tests.support.delivery_fakes import FakeStaleWebhooks, fake_delivery
from tests.support.registry_contracts import T0
from tests.support.registry_fakes import FakeWebhooks

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
FIVE_DAYS = 432_000


def stale(*, enabled=True, organization=True, error="HTTP 503") -> StaleWebhook:
    return StaleWebhook(
        uuid.uuid4(),
        uuid.uuid4() if organization else None,
        enabled,
        NOW - timedelta(days=6),
        NOW - timedelta(hours=1),
        error,
    )


def failing(store: FakeStaleWebhooks, *, enabled=True, registered=True, hours_ago=1) -> uuid.UUID:
    """A webhook that never succeeded since its creation six days ago, and gave up a
    delivery `hours_ago`; deleted when not `registered`."""
    webhook_id, six_days_ago = uuid.uuid4(), NOW - timedelta(days=6)
    if registered:
        store.register(webhook_id, uuid.uuid4(), enabled=enabled, created_at=six_days_ago)
    store.put_health(
        webhook_id,
        updated_at=six_days_ago,
        last_gave_up_at=NOW - timedelta(hours=hours_ago),
        last_error="HTTP 503",
    )
    return webhook_id


async def test_the_sweep_orders_each_stale_enabled_webhook_disabled_once_with_why():
    store, orders = FakeStaleWebhooks(), []
    first = failing(store, hours_ago=4)
    failing(store, enabled=False, hours_ago=3)
    failing(store, registered=False, hours_ago=2)
    last = failing(store, hours_ago=1)

    async def disable(order):
        orders.append(order)

    sweep = AutoDisable(
        store=store, disable=disable, clock=lambda: NOW, disable_after_s=FIVE_DAYS, batch=3
    )
    assert await sweep.run_once() is True  # a full batch: more may wait
    assert await sweep.run_once() is False
    assert await sweep.run_once() is False
    assert [o.webhook_id for o in orders] == [str(first), str(last)]
    assert "no successful attempt for over 5 days" in orders[0].reason
    assert orders[0].reason.endswith("last error: HTTP 503")


async def test_a_webhook_that_failed_within_the_window_is_left_alone():
    store, orders = FakeStaleWebhooks(), []
    webhook = failing(store)
    store.put_health(webhook, updated_at=NOW, last_success_at=NOW - timedelta(days=4))

    async def disable(order):
        orders.append(order)

    sweep = AutoDisable(
        store=store, disable=disable, clock=lambda: NOW, disable_after_s=FIVE_DAYS, batch=3
    )
    assert await sweep.run_once() is False
    assert orders == []


async def test_a_failed_order_is_made_again_on_a_later_pass():
    store, orders, broker_up = FakeStaleWebhooks(), [], [False]
    webhook = failing(store)

    async def disable(order):
        if not broker_up[0]:
            broker_up[0] = True
            raise ConnectionError("broker gone")
        orders.append(order)

    sweep = AutoDisable(
        store=store, disable=disable, clock=lambda: NOW, disable_after_s=FIVE_DAYS, batch=3
    )
    with pytest.raises(ConnectionError):
        await sweep.run_once()
    await sweep.run_once()
    await sweep.run_once()
    assert [o.webhook_id for o in orders] == [str(webhook)]  # once, on the pass after


async def test_the_upkeeps_pass_sweeps_for_stale_webhooks():
    delivery = fake_delivery(NOW, disable_after_s=FIVE_DAYS)
    webhook = failing(delivery.stale)
    await delivery.upkeep.run_once()
    await delivery.upkeep.run_once()
    assert [o.webhook_id for o in delivery.disabled] == [str(webhook)]


def test_the_reason_counts_seconds_when_the_setting_is_not_whole_days():
    assert "over 3 s" in stale_reason(stale(error=None), timedelta(seconds=3))


async def test_disabling_announces_webhook_disabled_with_the_record_and_reason():
    store = FakeWebhooks()
    webhooks = WebhookService(store, Topics(), lambda: T0, SecretsBox([generate_key()]), quota=2)
    created = await webhooks.create(
        str(uuid.uuid4()),
        WebhookInput.model_validate(
            {"url": "https://hooks.example.com/in", "events": ["participant.joined"]}
        ),
    )
    store.outbox.clear()
    assert await webhooks.disable(created.organization_id, created.id, reason="gone quiet")
    (_, _, record), (topic, key, value) = store.outbox
    assert (topic, key) == (Topics().events, created.organization_id.encode())
    event = parse_event(value)
    assert event.event == "webhook.disabled"
    body = json.loads(value)
    assert body["reason"] == "gone quiet"
    assert body["webhook"] == json.loads(record)
    assert body["webhook"]["enabled"] is False and "secret" not in body["webhook"]
