"""The delivery log as the registry serves it, and the orders it sends the delivery service.

The registry never writes the delivery schema: a redelivery or a test ping is an order on
`roomhooks.deliveries`, written to the outbox and published by the relay like every change.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from services.registry.audit.models import Actor, AuditEntry
from services.registry.audit.recorder import audit_entry, safe_change
from services.registry.deliveries.models import (
    AttemptRow,
    DeliveryAttempt,
    DeliveryRow,
    WebhookDelivery,
)
from services.registry.deliveries.records import (
    order_entry,
    public_attempt,
    public_delivery,
    test_ping_body,
)
from services.registry.deliveries.stats import (
    HealthRow,
    StatsRow,
    WebhookStats,
    summarise,
    window_start,
)
from services.registry.errors import NotFound, parse_id
from services.registry.outbox import OutboxEntry
from services.registry.webhooks.models import WebhookRow
from shared.kafka import Topics
from shared.messages import DeliveryRequested, RedeliverRequested, delivery_id_for
from shared.pagination import after_cursor, cut_page


class DeliveryLog(Protocol):
    """Reads of the delivery service's log (the registry never writes it) and of the
    webhooks it belongs to, each inside its account; and the outbox, for orders."""

    async def webhook(self, organization_id: UUID, webhook_id: UUID) -> WebhookRow | None: ...

    async def page(
        self,
        organization_id: UUID,
        webhook_id: UUID,
        *,
        status: str | None,
        limit: int,
        after: tuple[datetime, UUID] | None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[DeliveryRow]:
        """At most `limit` of the webhook's deliveries with this status (None: any), created
        from `since` (inclusive) to `until` (exclusive) where given, newest first by
        (created_at, id), those before `after`."""

    async def find(
        self, organization_id: UUID, webhook_id: UUID, delivery_id: UUID
    ) -> DeliveryRow | None: ...

    async def attempts(self, delivery_id: UUID, created_at: datetime) -> list[AttemptRow]:
        """The attempts of the delivery `delivery_id` created at `created_at`, first to
        last."""

    async def stats(
        self, webhook_id: UUID, *, period_s: int, since: datetime
    ) -> tuple[list[StatsRow], HealthRow | None]:
        """The webhook's stored stats buckets of `period_s` from `since`, oldest first, and its
        health row (None: no attempt yet); from aggregates, never a scan of attempts."""

    async def enqueue(
        self, entries: Sequence[OutboxEntry], *, audit: AuditEntry | None = None
    ) -> None:
        """Add to the outbox, and `audit` to the audit log, in a transaction of their own;
        the entries are published in this order."""


@dataclass(frozen=True)
class DeliveryPage:
    deliveries: list[WebhookDelivery]
    next_cursor: str | None


class DeliveryLogService:
    """A webhook's deliveries for its own account, and redelivery and test-ping orders."""

    def __init__(self, log: DeliveryLog, topics: Topics, clock: Callable[[], datetime]):
        self._log = log
        self._topics = topics
        self._clock = clock

    async def list(
        self,
        account_id: str,
        webhook_id: str,
        *,
        limit: int,
        status: str | None,
        cursor: str | None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> DeliveryPage:
        """A page of the webhook's deliveries in the window `since` to `until` (either open).
        A cursor is a position in the log, whatever window made it: the next page holds the
        deliveries before it that lie in this request's window, as the event log's do."""
        after = after_cursor(cursor)
        await self._webhook(account_id, webhook_id)
        rows = await self._log.page(
            parse_id(account_id),
            parse_id(webhook_id),
            status=status,
            limit=limit + 1,
            after=after,
            since=since,
            until=until,
        )
        rows, next_cursor = cut_page(rows, limit, lambda r: (r.created_at, r.id))
        return DeliveryPage([public_delivery(r) for r in rows], next_cursor)

    async def get(
        self, account_id: str, webhook_id: str, delivery_id: str
    ) -> tuple[WebhookDelivery, list[DeliveryAttempt]]:
        row = await self._delivery(account_id, webhook_id, delivery_id)
        attempts = await self._log.attempts(row.id, row.created_at)
        return public_delivery(row), [public_attempt(a) for a in attempts]

    async def stats(self, account_id: str, webhook_id: str, window: str) -> WebhookStats:
        """The webhook's endpoint health over `window` (one of `WINDOWS`)."""
        row = await self._webhook(account_id, webhook_id)
        now = self._clock()
        period_s, since = window_start(window, now)
        buckets, health = await self._log.stats(row.id, period_s=period_s, since=since)
        return summarise(str(row.id), window, buckets, health, now=now)

    async def redeliver(
        self, account_id: str, webhook_id: str, delivery_id: str, *, actor: Actor | None = None
    ) -> None:
        """Order a new attempt now, even after the delivery failed; `actor` is audited."""
        await self._webhook(account_id, webhook_id)
        await self._delivery(account_id, webhook_id, delivery_id)
        order = RedeliverRequested(
            delivery_id=str(parse_id(delivery_id)),
            webhook_id=str(parse_id(webhook_id)),
            organization_id=str(parse_id(account_id)),
            requested_at=self._clock(),
        )
        audit = audit_entry(
            actor, account_id, "delivery.redelivered", order.delivery_id, [], now=order.requested_at
        )
        await self._log.enqueue([order_entry(self._topics, order)], audit=audit)

    async def send_test(
        self, account_id: str, webhook_id: str, *, actor: Actor | None = None
    ) -> tuple[str, str]:
        """A `webhook.test` ping through the same path as every delivery; (delivery, event)
        ids. `actor` is audited."""
        now = self._clock()
        event_id = str(uuid.uuid4())
        row = await self._webhook(account_id, webhook_id)
        request = DeliveryRequested(
            delivery_id=delivery_id_for(str(row.id), event_id),
            webhook_id=str(row.id),
            organization_id=str(row.organization_id),
            event_id=event_id,
            event="webhook.test",
            body=test_ping_body(
                event_id=event_id,
                organization_id=str(row.organization_id),
                webhook={"id": str(row.id), "name": row.name, "url": row.url},
                now=now,
            ),
            created_at=now,
        )
        sent = [safe_change("delivery_id", request.delivery_id)]
        audit = audit_entry(actor, account_id, "webhook.test_sent", row.id, sent, now=now)
        await self._log.enqueue([order_entry(self._topics, request)], audit=audit)
        return request.delivery_id, event_id

    async def _webhook(self, account_id: str, webhook_id: str) -> WebhookRow:
        row = await self._log.webhook(parse_id(account_id), parse_id(webhook_id))
        if row is None:
            raise NotFound(webhook_id)
        return row

    async def _delivery(self, account_id: str, webhook_id: str, delivery_id: str) -> DeliveryRow:
        row = await self._log.find(
            parse_id(account_id), parse_id(webhook_id), parse_id(delivery_id)
        )
        if row is None:
            raise NotFound(delivery_id)
        return row
