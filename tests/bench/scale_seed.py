"""The scale part's data: rows of `delivery.deliveries`, `delivery.delivery_attempts` and
`events.events` for one account, made by pure generators (time and randomness are arguments)
and written with COPY, a chunk at a time, straight into the migrated schemas."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

DELIVERY_COLUMNS = (
    "id",
    "webhook_id",
    "organization_id",
    "event_id",
    "event",
    "payload",
    "status",
    "attempts",
    "last_attempt_at",
    "status_code",
    "last_error",
    "next_attempt_at",
    "lease_until",
    "created_at",
    "updated_at",
)
ATTEMPT_COLUMNS = (
    "delivery_id",
    "attempt",
    "started_at",
    "duration_ms",
    "status_code",
    "error",
    "delivery_created_at",  # its delivery's created_at: the day both live in
)
EVENT_COLUMNS = (
    "id",
    "organization_id",
    "event_id",
    "event",
    "room_id",
    "status",
    "reason",
    "payload",
    "webhook_ids",
    "workflow_ids",
    "received_at",
)
# Rows handed to one COPY: big enough to amortise the round trip, small enough to show progress.
CHUNK = 50_000
FAILED_ERROR = "HTTP 503 after 4 attempts"


@dataclass(frozen=True)
class DeliveryShape:
    """What `delivery_rows` makes: `count` deliveries spread evenly over `webhook_ids`, created
    one after another from `first_at` to `first_at + span`, each `failed` with probability
    `failed_fraction`; `attempts_fraction` of them also get one row in `delivery_attempts`."""

    organization_id: uuid.UUID
    webhook_ids: Sequence[uuid.UUID]
    count: int
    first_at: datetime
    span: timedelta
    failed_fraction: float = 0.1
    attempts_fraction: float = 0.05


def body(event_id: str, organization_id: uuid.UUID, room: int, at: datetime) -> str:
    """A participant.joined body as fanout renders it: about 300 bytes."""
    return json.dumps(
        {
            "id": event_id,
            "event": "participant.joined",
            "timestamp": at.isoformat(),
            "organization_id": str(organization_id),
            "room": {"id": f"room-{room:04d}", "name": "Weekly planning"},
            "user": {"id": f"user-{room * 7 % 1000:04d}", "name": "Ada Lovelace", "role": "host"},
        },
        separators=(",", ":"),
    )


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def delivery_rows(shape: DeliveryShape, rng: random.Random) -> Iterator[tuple[tuple, tuple | None]]:
    """One (delivery row, attempt row or None) per delivery, oldest first, in the column orders
    of DELIVERY_COLUMNS and ATTEMPT_COLUMNS."""
    step = shape.span / max(shape.count, 1)
    webhooks = shape.webhook_ids
    for n in range(shape.count):
        at = shape.first_at + step * n
        event_id = str(_uuid(rng))
        failed = rng.random() < shape.failed_fraction
        attempts = 4 if failed else 1
        done_at = at + timedelta(seconds=36 if failed else 0.05)
        delivery_id = _uuid(rng)
        row = (
            delivery_id,
            webhooks[n % len(webhooks)],
            shape.organization_id,
            event_id,
            "participant.joined",
            body(event_id, shape.organization_id, n % 500, at),
            "failed" if failed else "success",
            attempts,
            done_at,
            503 if failed else 200,
            FAILED_ERROR if failed else None,
            None,
            None,
            at,
            done_at,
        )
        attempt = None
        if rng.random() < shape.attempts_fraction:
            status = 503 if failed else 200
            attempt = (delivery_id, attempts, done_at, rng.randint(5, 400), status, None, at)
        yield row, attempt


def event_rows(
    organization_id: uuid.UUID,
    webhook_ids: Sequence[uuid.UUID],
    *,
    count: int,
    first_at: datetime,
    span: timedelta,
    rng: random.Random,
    rejected_fraction: float = 0.01,
) -> Iterator[tuple]:
    """`count` rows of events.events (EVENT_COLUMNS order), oldest first; accepted ones reached
    one webhook, refused ones carry a reason and no payload."""
    step = span / max(count, 1)
    for n in range(count):
        at = first_at + step * n
        event_id = str(_uuid(rng))
        row_id = uuid.uuid5(organization_id, event_id)
        if rng.random() < rejected_fraction:
            yield (row_id, organization_id, event_id, "participant.joined", None, "rejected",
                   "room: field required", None, [], [], at)  # fmt: skip
            continue
        room = n % 500
        yield (
            row_id,
            organization_id,
            event_id,
            "participant.joined",
            f"room-{room:04d}",
            "accepted",
            None,
            body(event_id, organization_id, room, at),
            [webhook_ids[n % len(webhook_ids)]],
            [],
            at,
        )


async def copy_deliveries(
    conn: asyncpg.Connection,
    shape: DeliveryShape,
    rng: random.Random,
    progress: Callable[[str], None],
) -> int:
    """COPY the shape's deliveries and attempts, CHUNK at a time; returns the attempts made."""
    started, done, attempts = time.monotonic(), 0, 0
    rows: list[tuple] = []
    attempt_rows: list[tuple] = []

    async def flush() -> None:
        nonlocal done, attempts
        await conn.copy_records_to_table(
            "deliveries", schema_name="delivery", columns=DELIVERY_COLUMNS, records=rows
        )
        await conn.copy_records_to_table(
            "delivery_attempts",
            schema_name="delivery",
            columns=ATTEMPT_COLUMNS,
            records=attempt_rows,
        )
        done, attempts = done + len(rows), attempts + len(attempt_rows)
        rows.clear()
        attempt_rows.clear()
        rate = done / max(time.monotonic() - started, 1e-9)
        progress(f"seeding deliveries: {done:,} of {shape.count:,} ({rate:,.0f}/s)")

    for row, attempt in delivery_rows(shape, rng):
        rows.append(row)
        if attempt is not None:
            attempt_rows.append(attempt)
        if len(rows) >= CHUNK:
            await flush()
    if rows:
        await flush()
    return attempts


async def copy_events(
    conn: asyncpg.Connection, rows: Iterator[tuple], total: int, progress: Callable[[str], None]
) -> None:
    done, chunk = 0, []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK:
            await conn.copy_records_to_table(
                "events", schema_name="events", columns=EVENT_COLUMNS, records=chunk
            )
            done += len(chunk)
            chunk.clear()
            progress(f"seeding events: {done:,} of {total:,}")
    if chunk:
        await conn.copy_records_to_table(
            "events", schema_name="events", columns=EVENT_COLUMNS, records=chunk
        )
