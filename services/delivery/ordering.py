"""asyncpg SQL of ordered delivery: one delivery at a time per (webhook, room).

A request with `ordering: "room"` is stored waiting (never claimed) and queued by its event's
position; `delivery.start_next` (migration 0006) makes the lowest waiting one of a room its
head, due at once, when the room has none. The head is attempted like any delivery (leases,
retries, `Retry-After`, held while its webhook is disabled); the trigger on its status starts
the next one in the transaction that ends it, whatever ends it. So the position, not the
arrival, decides which waiting delivery goes next, and two replicas never start two of a
room: every start locks the room's head row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from uuid import UUID

import asyncpg

from shared.failures import storable_text
from shared.messages import DeliveryRequested

# Room ids are free text: longer ones are keyed by their digest (an index entry is bounded).
_MAX_KEY = 200


def order_key(room_id: str | None) -> str:
    """The room a delivery is ordered in: "" for an organization event (ordered per webhook)."""
    if room_id is None:
        return ""
    key = storable_text(room_id)
    if len(key) > _MAX_KEY:
        return "sha256:" + hashlib.sha256(room_id.encode("utf-8", "surrogatepass")).hexdigest()
    return key


async def insert_ordered(
    conn: asyncpg.Connection,
    requests: Sequence[DeliveryRequested],
    *,
    now: datetime,
    lease_until: datetime,
    traces: Mapping[str, str] | None = None,
) -> list[tuple[UUID, datetime]]:
    """Store ordered requests waiting, queue them, and start the head of each room that has
    none: the (id, created_at) of the deliveries started, leased until `lease_until`. A
    request seen before stores and starts nothing. Run inside the caller's transaction."""
    if not requests:
        return []
    keys = [order_key(r.room_id) for r in requests]
    stored = await conn.fetch(
        """
        INSERT INTO delivery.deliveries
            (id, webhook_id, organization_id, event_id, event, payload, status, attempts,
             next_attempt_at, lease_until, created_at, updated_at, order_key,
             position_partition, position_offset, waiting, traceparent)
        SELECT r.id, r.webhook_id, r.organization_id, r.event_id, r.event, r.payload,
               'pending', 0, NULL, NULL, r.created_at, $7, r.order_key, r.part, r.off, true,
               r.traceparent
        FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                    $8::timestamptz[], $9::text[], $10::int[], $11::bigint[], $12::text[])
             AS r(id, webhook_id, organization_id, event_id, event, payload, created_at,
                  order_key, part, off, traceparent)
        ON CONFLICT DO NOTHING
        RETURNING id, webhook_id, order_key, position_partition, position_offset, created_at
        """,
        # As text: asyncpg encodes a uuid from it; the message checked the form (`UuidText`).
        [r.delivery_id for r in requests],
        [r.webhook_id for r in requests],
        [r.organization_id for r in requests],
        [r.event_id for r in requests],
        [r.event for r in requests],
        [r.body for r in requests],
        now,
        [r.created_at for r in requests],
        keys,
        [_position(r)[0] for r in requests],
        [_position(r)[1] for r in requests],
        [traces.get(r.delivery_id) if traces else None for r in requests],
    )
    if not stored:
        return []
    await conn.execute(
        """
        INSERT INTO delivery.order_queue
            (webhook_id, order_key, position_partition, position_offset, delivery_id,
             delivery_created_at)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::bigint[], $5::uuid[],
                             $6::timestamptz[])
        ON CONFLICT DO NOTHING
        """,
        [s["webhook_id"] for s in stored],
        [s["order_key"] for s in stored],
        [s["position_partition"] for s in stored],
        [s["position_offset"] for s in stored],
        [s["id"] for s in stored],
        [s["created_at"] for s in stored],
    )
    # Sorted: every caller locks head rows in one order, so two never wait on each other.
    rooms = sorted({(s["webhook_id"], s["order_key"]) for s in stored})
    started = await conn.fetch(
        """
        SELECT s.id, s.created_at
        FROM unnest($1::uuid[], $2::text[]) AS k(webhook_id, order_key),
             LATERAL delivery.start_next(k.webhook_id, k.order_key, $3, $4) s
        """,
        [w for w, _ in rooms],
        [k for _, k in rooms],
        now,
        lease_until,
    )
    return [(r["id"], r["created_at"]) for r in started]


def _position(request: DeliveryRequested) -> tuple[int, int]:
    if request.position is None:  # DeliveryRequested refuses an ordered one without
        raise ValueError("an ordered delivery request without a position")
    return request.position.partition, request.position.offset


async def leave_order(conn: asyncpg.Connection, delivery_id: UUID) -> None:
    """A redelivery takes a waiting delivery out of its room's order: it no longer waits
    (the caller makes it due) and holds nothing. A head keeps its place (it was going
    anyway); one already ended holds nothing."""
    await conn.execute("DELETE FROM delivery.order_queue WHERE delivery_id = $1", delivery_id)
