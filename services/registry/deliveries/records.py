"""Pure translations: stored deliveries to what the API shows, and the orders the registry
sends the delivery service (on `roomhooks.deliveries`, keyed by webhook: deliveries,
redeliveries, recoveries)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from services.registry.deliveries.models import (
    AttemptRow,
    DeliveryAttempt,
    DeliveryRow,
    WebhookDelivery,
)
from services.registry.outbox import OutboxEntry
from shared.events import format_timestamp
from shared.jsjson import to_js_json
from shared.kafka import Topics, dumps
from shared.messages import DeliveryRequested, RecoverRequested, RedeliverRequested


def public_delivery(row: DeliveryRow) -> WebhookDelivery:
    retrying = row.status == "pending" and row.attempts > 0
    return WebhookDelivery(
        id=str(row.id),
        webhook_id=str(row.webhook_id),
        event_id=row.event_id,
        event=row.event,
        payload=row.payload,
        status=row.status,
        attempts=row.attempts,
        last_attempt_at=row.last_attempt_at,
        next_retry_at=row.next_attempt_at if retrying else None,
        status_code=row.status_code,
        last_error=row.last_error,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def public_attempt(row: AttemptRow) -> DeliveryAttempt:
    return DeliveryAttempt(**asdict(row))


def test_ping_body(*, event_id: str, organization_id: str, webhook: dict, now: datetime) -> str:
    """The `webhook.test` payload: the same envelope as every event, JSON as JS prints it."""
    return to_js_json(
        {
            "id": event_id,
            "event": "webhook.test",
            "timestamp": format_timestamp(now),
            "organization_id": organization_id,
            "webhook": webhook,
            "data": {},
        }
    )


def order_entry(
    topics: Topics, order: DeliveryRequested | RedeliverRequested | RecoverRequested
) -> OutboxEntry:
    value = dumps(order.model_dump(mode="json"))
    return topics.deliveries, order.webhook_id.encode(), value
