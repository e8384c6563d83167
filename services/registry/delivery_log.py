"""The delivery log as the registry serves it: reads of `delivery.*`, orders through the outbox.

The registry never writes the delivery schema. A redelivery or a test ping is an order on
`roomhooks.deliveries`, written to the outbox in the same transaction as nothing else needs,
and published by the relay like every other change.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.registry import repository
from services.registry.models import DeliveryAttempt, WebhookDelivery
from services.registry.repository import WebhookRow
from services.registry.service import NotFound, parse_id
from shared.events import format_timestamp
from shared.jsjson import to_js_json
from shared.kafka import Topics, dumps
from shared.messages import DeliveryRequested, RedeliverRequested, delivery_id_for
from shared.pagination import after_cursor, cut_page

STATUSES = ("pending", "success", "failed")

_DELIVERY_COLUMNS = (
    "id, webhook_id, event_id, event, payload, status, attempts, last_attempt_at,"
    " next_attempt_at, status_code, last_error, created_at, updated_at"
)


@dataclass(frozen=True)
class DeliveryPage:
    deliveries: list[WebhookDelivery]
    next_cursor: str | None


def _delivery(record: asyncpg.Record) -> WebhookDelivery:
    retrying = record["status"] == "pending" and record["attempts"] > 0
    return WebhookDelivery(
        id=str(record["id"]),
        webhook_id=str(record["webhook_id"]),
        event_id=record["event_id"],
        event=record["event"],
        payload=record["payload"],
        status=record["status"],
        attempts=record["attempts"],
        last_attempt_at=record["last_attempt_at"],
        next_retry_at=record["next_attempt_at"] if retrying else None,
        status_code=record["status_code"],
        last_error=record["last_error"],
        created_at=record["created_at"],
        updated_at=record["updated_at"],
    )


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


class DeliveryLog:
    def __init__(self, pool: asyncpg.Pool, topics: Topics, clock: Callable[[], datetime]):
        self._pool = pool
        self._topics = topics
        self._clock = clock

    async def _webhook(
        self, conn: asyncpg.Connection, account_id: str, webhook_id: str
    ) -> WebhookRow:
        row = await repository.get_webhook(
            conn, organization_id=parse_id(account_id), webhook_id=parse_id(webhook_id)
        )
        if row is None:
            raise NotFound(webhook_id)
        return row

    async def list(
        self,
        account_id: str,
        webhook_id: str,
        *,
        limit: int,
        status: str | None,
        cursor: str | None,
    ) -> DeliveryPage:
        after = after_cursor(cursor)
        async with self._pool.acquire() as conn:
            await self._webhook(conn, account_id, webhook_id)
            records = await conn.fetch(
                f"SELECT {_DELIVERY_COLUMNS} FROM delivery.deliveries"
                " WHERE webhook_id = $1 AND organization_id = $2"
                " AND ($3::text IS NULL OR status = $3)"
                " AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5::uuid))"
                " ORDER BY created_at DESC, id DESC LIMIT $6",
                parse_id(webhook_id),
                parse_id(account_id),
                status,
                after[0] if after else None,
                after[1] if after else None,
                limit + 1,
            )
        records, next_cursor = cut_page(records, limit, lambda r: (r["created_at"], r["id"]))
        return DeliveryPage([_delivery(r) for r in records], next_cursor)

    async def get(
        self, account_id: str, webhook_id: str, delivery_id: str
    ) -> tuple[WebhookDelivery, list[DeliveryAttempt]]:
        async with self._pool.acquire() as conn:
            record = await conn.fetchrow(
                f"SELECT {_DELIVERY_COLUMNS} FROM delivery.deliveries"
                " WHERE id = $1 AND webhook_id = $2 AND organization_id = $3",
                parse_id(delivery_id),
                parse_id(webhook_id),
                parse_id(account_id),
            )
            if record is None:
                raise NotFound(delivery_id)
            attempts = await conn.fetch(
                "SELECT attempt, started_at, duration_ms, status_code, error, response_body"
                " FROM delivery.delivery_attempts WHERE delivery_id = $1 ORDER BY attempt",
                record["id"],
            )
        return _delivery(record), [DeliveryAttempt(**dict(a)) for a in attempts]

    async def redeliver(self, account_id: str, webhook_id: str, delivery_id: str) -> None:
        """Order a new attempt now, even after the delivery failed."""
        async with self._pool.acquire() as conn, conn.transaction():
            await self._webhook(conn, account_id, webhook_id)
            found = await conn.fetchval(
                "SELECT 1 FROM delivery.deliveries"
                " WHERE id = $1 AND webhook_id = $2 AND organization_id = $3",
                parse_id(delivery_id),
                parse_id(webhook_id),
                parse_id(account_id),
            )
            if not found:
                raise NotFound(delivery_id)
            order = RedeliverRequested(
                delivery_id=str(parse_id(delivery_id)),
                webhook_id=str(parse_id(webhook_id)),
                organization_id=str(parse_id(account_id)),
                requested_at=self._clock(),
            )
            await repository.enqueue(conn, [self._entry(order.webhook_id, order)])

    async def send_test(self, account_id: str, webhook_id: str) -> tuple[str, str]:
        """A `webhook.test` ping through the same path as every delivery; (delivery, event) ids."""
        now = self._clock()
        event_id = str(uuid.uuid4())
        async with self._pool.acquire() as conn, conn.transaction():
            row = await self._webhook(conn, account_id, webhook_id)
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
            await repository.enqueue(conn, [self._entry(str(row.id), request)])
        return request.delivery_id, event_id

    def _entry(
        self, webhook_id: str, message: DeliveryRequested | RedeliverRequested
    ) -> tuple[str, bytes, bytes]:
        value = dumps(message.model_dump(mode="json"))
        return self._topics.deliveries, webhook_id.encode(), value


def check_status(value: str | None, *, allowed: tuple[str, ...] = STATUSES) -> str | None:
    """A `status` filter: None when absent, else one of `allowed` (ValueError otherwise)."""
    if value in (None, ""):
        return None
    if value not in allowed:
        raise ValueError(f"must be one of {', '.join(allowed)}")
    return value
