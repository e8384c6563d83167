"""Pure translations from stored webhooks to what the API shows and what Kafka carries."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from services.registry.outbox import OutboxEntry
from services.registry.webhooks.models import (
    Webhook,
    WebhookRow,
    WebhookWithSecret,
    timestamp_text,
)
from shared.events import format_timestamp
from shared.kafka import Topics, dumps
from shared.messages import WebhookRecord, registry_key

# Shown by the API, never published (registry record, webhook.created): the headers may be
# credentials, and the rotation and the traceparent header (delivery reads it from the row)
# are nobody else's concern.
_NOT_PUBLISHED = {"headers", "previous_secret_expires_at", "send_traceparent"}


def public_webhook(row: WebhookRow, headers: Mapping[str, str] | None = None) -> Webhook:
    """The webhook as the API shows it, with `headers` opened (and masked or not) by the
    caller; without them, as it is published (no headers)."""
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
        ordering=row.ordering,
        send_traceparent=row.send_traceparent,
        headers=dict(headers or {}),
        previous_secret_expires_at=row.previous_secret_until,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def shown_webhook(row: WebhookRow, headers: Mapping[str, str]) -> dict[str, Any]:
    """`public_webhook(row, headers).model_dump(mode="json")`, built straight from the row:
    a page of webhooks is read far more often than anything else here, and the model's
    validation and its serialization (field serializers in Python) cost ~12 us a row against
    ~7 for this and `ok_document`'s (a test holds the two equal)."""
    expires = row.previous_secret_until
    return {
        "id": str(row.id),
        "organization_id": str(row.organization_id),
        "name": row.name,
        "url": row.url,
        "events": list(row.events),
        "room_id": row.room_id,
        "enabled": row.enabled,
        "disabled_reason": row.disabled_reason,
        "retry_schedule": row.retry_schedule,
        "headers": dict(headers),
        "ordering": row.ordering,
        "send_traceparent": row.send_traceparent,
        "previous_secret_expires_at": None if expires is None else timestamp_text(expires),
        "created_at": timestamp_text(row.created_at),
        "updated_at": timestamp_text(row.updated_at),
    }


def webhook_with_secret(
    row: WebhookRow, secret: str, headers: Mapping[str, str]
) -> WebhookWithSecret:
    """The answer to a creation or a rotation: the only ones that carry the (plain) secret."""
    return WebhookWithSecret(**public_webhook(row, headers).model_dump(), secret=secret)


def webhook_record(row: WebhookRow) -> WebhookRecord:
    return WebhookRecord(
        **public_webhook(row).model_dump(exclude={"id", "organization_id", *_NOT_PUBLISHED}),
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
        "webhook": public_webhook(row).model_dump(mode="json", exclude=_NOT_PUBLISHED),
    }
    return topics.events, str(row.organization_id).encode(), dumps(event)
