"""Auto-disable: the sweep orders the registry to disable each stale webhook once, with the
reason; the registry's disable announces `webhook.disabled` with the public record."""

from __future__ import annotations

import contextlib
import json
import uuid
from datetime import UTC, datetime, timedelta

from services.delivery.health_store import StaleWebhook
from services.delivery.upkeep import AutoDisable, stale_reason
from services.registry.webhooks.models import WebhookInput
from services.registry.webhooks.service import WebhookService
from shared.events import parse_event
from shared.kafka import Topics
from shared.secrets_box import SecretsBox, generate_key
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


class FakeStale:
    def __init__(self, webhooks: list[StaleWebhook]) -> None:
        self.waiting = webhooks
        self.asked: list[tuple[datetime, int]] = []

    @contextlib.asynccontextmanager
    async def stale_turn(self, *, stale_before, limit, now):
        self.asked.append((stale_before, limit))
        taken, self.waiting = self.waiting[:limit], self.waiting[limit:]
        yield taken


async def test_the_sweep_orders_each_stale_enabled_webhook_disabled_once_with_why():
    hooks = [stale(), stale(enabled=False), stale(organization=False), stale()]
    store, orders = FakeStale(hooks), []

    async def disable(order):
        orders.append(order)

    sweep = AutoDisable(
        store=store, disable=disable, clock=lambda: NOW, disable_after_s=FIVE_DAYS, batch=3
    )
    assert await sweep.run_once() is True  # a full batch: more may wait
    assert await sweep.run_once() is False
    assert await sweep.run_once() is False
    assert [o.webhook_id for o in orders] == [str(hooks[0].webhook_id), str(hooks[3].webhook_id)]
    assert store.asked[0] == (NOW - timedelta(days=5), 3)
    assert "no successful attempt for over 5 days" in orders[0].reason
    assert orders[0].reason.endswith("last error: HTTP 503")


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
