"""Ordered delivery keeps to the delivery path's rule: a delivery is found by (id,
created_at), so starting a room's next one, on storing or when its head ends (the trigger
and `delivery.start_next`), reads one day's partition of `deliveries` per delivery it
touches, under the plan for the values and under the generic plan too. Counted from the
scans Postgres notes for the transaction (`pg_stat_xact_user_tables`), days of deliveries
kept around them."""

from __future__ import annotations

import uuid

import pytest

from services.delivery.ordering import insert_ordered
from shared.messages import DeliveryRequested, EventPosition, delivery_id_for
from tests.integration.test_delivery_partition_pruning import (
    DAY,
    ORG,
    PLANS,
    WEBHOOK,
    at,
    conn,  # noqa: F401 - the fixture: DAYS of deliveries, each day in its partition
    day_partition,
)

pytestmark = pytest.mark.integration


def ordered(n: int) -> DeliveryRequested:
    return DeliveryRequested(
        delivery_id=delivery_id_for(str(WEBHOOK), f"ordered-{n}"),
        webhook_id=str(WEBHOOK),
        organization_id=str(ORG),
        event_id=f"ordered-{n}",
        event="participant.joined",
        body="{}",
        created_at=at(DAY, 12 + n / 60),
        room_id="room-1",
        position=EventPosition(partition=4, offset=100 + n),
        ordering="room",
    )


async def scans(db) -> dict[str, int]:
    """Scans of each delivery table this session has made and not yet reported (the view
    also holds earlier transactions' until they are flushed: callers compare two reads)."""
    records = await db.fetch(
        "SELECT relname, seq_scan + idx_scan AS scans FROM pg_stat_xact_user_tables"
        " WHERE schemaname = 'delivery'"
    )
    return {r["relname"]: r["scans"] for r in records}


def grown(before: dict[str, int], after: dict[str, int]) -> set[str]:
    return {name for name, n in after.items() if n > before.get(name, 0)}


class _Rollback(Exception):
    pass


@PLANS
async def test_storing_and_ending_heads_read_only_their_days_partition(conn, generic):  # noqa: F811
    if generic:
        await conn.execute("SET plan_cache_mode = force_generic_plan")
    now = at(DAY, 13)
    expected = {day_partition("deliveries"), "order_heads", "order_queue"}
    seen = []
    try:
        async with conn.transaction():
            before = await scans(conn)
            started = await insert_ordered(
                conn, [ordered(n) for n in range(8)], now=now, lease_until=now
            )
            assert [i for i, _ in started] == [uuid.UUID(ordered(0).delivery_id)]
            seen.append(grown(before, await scans(conn)))
            raise _Rollback
    except _Rollback:
        pass
    async with conn.transaction():
        started = await insert_ordered(
            conn, [ordered(n) for n in range(8)], now=now, lease_until=now
        )
    # Each head ends in a transaction of its own; the trigger starts the next. More than five
    # runs: plpgsql's cached plans go generic after five.
    for n in range(7):
        [(head, created_at)] = started
        try:
            async with conn.transaction():
                before = await scans(conn)
                await conn.execute(
                    "UPDATE delivery.deliveries SET status = 'success', updated_at = $3"
                    " WHERE id = $1 AND created_at = $2",
                    head,
                    created_at,
                    now,
                )
                seen.append(grown(before, await scans(conn)))
                nxt = await conn.fetchrow(
                    "SELECT delivery_id, delivery_created_at FROM delivery.order_heads"
                )
                raise _Rollback
        except _Rollback:
            pass
        await conn.execute(
            "UPDATE delivery.deliveries SET status = 'success', updated_at = $3"
            " WHERE id = $1 AND created_at = $2",
            head,
            created_at,
            now,
        )
        assert nxt["delivery_id"] == uuid.UUID(ordered(n + 1).delivery_id)
        started = [(nxt["delivery_id"], nxt["delivery_created_at"])]
    assert seen == [expected] * len(seen)
