"""Pure translations from stored webhooks to what the API shows and what Kafka carries."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from services.registry.outbox import OutboxEntry
from services.registry.webhooks.models import Webhook, WebhookRow, WebhookWithSecret
from shared.events import format_timestamp
from shared.kafka import Topics, dumps
from shared.messages import WebhookRecord, registry_key


def public_webhook(row: WebhookRow) -> Webhook:
    return Webhook(
        id=str(row.id),
        organization_id=str(row.organization_id),
        name=row.name,
        url=row.url,
        events=list(row.events),
        room_id=row.room_id,
        enabled=row.enabled,
        disabled_reason=row.disabled_reason,
        retry_schedule=row.retry_schedule,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def webhook_with_secret(row: WebhookRow, secret: str) -> WebhookWithSecret:
    """The 201 of a creation: the only answer that carries the (plain) secret."""
    return WebhookWithSecret(**public_webhook(row).model_dump(), secret=secret)


def webhook_record(row: WebhookRow) -> WebhookRecord:
    return WebhookRecord(
        **public_webhook(row).model_dump(exclude={"id", "organization_id"}),
        id=str(row.id),
        organization_id=str(row.organization_id),
        revision=row.revision,
    )


def registry_entry(topics: Topics, row: WebhookRow) -> OutboxEntry:
    value = webhook_record(row).model_dump(mode="json")
    return topics.registry, registry_key("webhook", str(row.id)).encode(), dumps(value)


def tombstone_entry(topics: Topics, webhook_id: UUID) -> OutboxEntry:
    return topics.registry, registry_key("webhook", str(webhook_id)).encode(), None


def webhook_created_entry(
    topics: Topics, row: WebhookRow, *, event_id: str, now: datetime
) -> OutboxEntry:
    """The organization event `webhook.created`, keyed by organization like all org events."""
    event = {
        "id": event_id,
        "event": "webhook.created",
        "timestamp": format_timestamp(now),
        "organization_id": str(row.organization_id),
        "room": None,
        "webhook": public_webhook(row).model_dump(mode="json"),
    }
    return topics.events, str(row.organization_id).encode(), dumps(event)
