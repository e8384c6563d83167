"""The registry feed skips a record it cannot apply, alone, and counts it (fakes, no broker)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from services.fanout.index import Subscriptions
from services.fanout.metrics import FanoutMetrics
from services.fanout.registry_feed import RegistryFeed
from shared.kafka import dumps
from shared.messages import WebhookRecord

NOW = datetime(2026, 5, 29, 10, 6, tzinfo=UTC)
TP = TopicPartition("ns.registry", 0)


def webhook() -> WebhookRecord:
    return WebhookRecord(
        id=str(uuid.uuid4()),
        organization_id=str(uuid.uuid4()),
        name=None,
        url="https://example.com",
        events=["participant.joined"],
        room_id=None,
        enabled=True,
        revision=1,
        created_at=NOW,
        updated_at=NOW,
    )


def record(offset: int, item: WebhookRecord | None, key: bytes | None = None) -> ConsumerRecord:
    value = dumps(item.model_dump(mode="json")) if item else b"{nope"
    key = key or f"webhook:{item.id}".encode()
    return ConsumerRecord(TP.topic, 0, offset, 0, 0, key, value, None, 0, len(value), ())


class OneBatch:
    def __init__(self, records: list[ConsumerRecord]) -> None:
        self._batch = {TP: records}

    async def getmany(self, timeout_ms: int, max_records: int) -> dict:
        batch, self._batch = self._batch, {}
        return batch


async def test_a_record_that_cannot_be_applied_is_skipped_alone_and_counted_as_poison():
    exploding, good = webhook(), webhook()
    indexes, metrics = Subscriptions(), FanoutMetrics.create()
    apply = indexes.webhooks.apply

    def apply_or_fail(item: WebhookRecord) -> bool:
        if item.id == exploding.id:
            raise ValueError("an index bug")
        return apply(item)

    indexes.webhooks.apply = apply_or_fail  # type: ignore[method-assign]
    batch = [
        record(0, exploding),
        record(1, None, key=f"webhook:{good.id}".encode()),
        record(2, good),
    ]
    feed = RegistryFeed(
        OneBatch(batch),  # type: ignore[arg-type]
        TP.topic,
        indexes,
        metrics,
        max_records=10,
        poll_timeout_ms=10,
    )
    assert await feed.poll() == 3
    assert indexes.webhooks.get(good.id) is not None
    labels = {"service": "fanout", "kind": "invalid_registry_record"}
    assert metrics.registry.get_sample_value("roomhooks_poison_inputs_total", labels) == 2
    outcomes = {"outcome": "invalid"}
    assert (
        metrics.registry.get_sample_value("roomhooks_fanout_registry_records_total", outcomes) == 2
    )
