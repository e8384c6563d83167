"""Pure translations from stored webhooks to what the API shows and what Kafka carries."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

from pydantic_core import to_json

from services.registry.outbox import OutboxEntry
from services.registry.webhooks.models import (
    Webhook,
    WebhookRow,
    WebhookWithSecret,
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


class ListedWebhook(NamedTuple):
    """A webhook of a page as Postgres renders it (repository.py `_LISTED`): its `Webhook`
    document, compact JSON, in two parts around the `headers`, which only the registry can
    open. A page is read far more often than anything else here, and rendering it in Python
    (18 columns decoded, a dict, then JSON) cost the registry's process 0.75-1.1 ms a page of
    51, this 0.4-0.45 (Postgres's CPU goes up, but its backends run on other cores)."""

    id: UUID
    created_at: datetime
    headers_ciphertext: str | None
    before_headers: str  # `{"id":...` up to `retry_schedule`'s value, unclosed
    after_headers: str  # `"ordering":...` to `updated_at`'s value and the closing brace


def listed_document(listed: ListedWebhook, headers: Mapping[str, str]) -> str:
    """The webhook's JSON document, with `headers` opened (and masked or not) by the caller:
    the bytes `public_webhook(row, headers).model_dump_json()` writes."""
    shown = to_json(headers).decode("utf-8") if headers else "{}"
    return f'{listed.before_headers},"headers":{shown},{listed.after_headers}'


def list_document(documents: list[str], next_cursor: str | None) -> str:
    """A page's `data`: the bytes `WebhookListData(...).model_dump_json()` writes."""
    cursor = to_json(next_cursor).decode("utf-8")
    return f'{{"webhooks":[{",".join(documents)}],"next_cursor":{cursor}}}'


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
