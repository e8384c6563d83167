"""Ordered delivery keeps to the delivery path's rule: a delivery is found by (id,
created_at), so starting a room's next one, on storing or when its head ends (the trigger
and `delivery.start_next`), reads one day's partition of `deliveries` per delivery it
touches, under the plan for the values and under the generic plan too. Counted from the
scans Postgres notes for the transaction (`pg_stat_xact_user_tables`), days of deliveries
kept around them. And each of those reads is through the primary key even where the day's
statistics count no pending delivery (the function's own plans, from `auto_explain`)."""

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
    stored_jobs,
)
from tests.support.plans import nested_plans, parent_indexes, scans_run

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


@PLANS
async def test_a_rooms_next_delivery_is_found_by_its_key_where_statistics_say_none_pending(
    conn,  # noqa: F811
    generic,
):
    # The day was last analyzed when none of its deliveries was pending (the fixture's), as
    # autovacuum may have last seen it; since then a thousand were stored, leased and in
    # flight. Postgres still counts no pending delivery in it.
    now = at(DAY, 13)
    await stored_jobs(conn, 1_000, due=now, lease_until=at(DAY, 14))

    async def store_in_order():
        # The first starts as the room's head; the second finds the head still pending.
        for n in range(2):
            await insert_ordered(conn, [ordered(n)], now=now, lease_until=now)

    # The functions' statements are planned by the session's setting (`shared.db`'s).
    mode = "force_generic_plan" if generic else "force_custom_plan"
    await conn.execute(f"SET plan_cache_mode = {mode}")
    plans = await nested_plans(conn, store_in_order)
    parents = await parent_indexes(conn, "delivery")
    lookups = [scan for plan in plans for scan in scans_run(plan, "deliveries")]
    assert lookups  # the head's start and the head's check
    assert {parents.get(scan.get("Index Name", ""), scan["Node Type"]) for scan in lookups} == {
        "deliveries_pkey"
    }
    assert sum(scan.get("Rows Removed by Filter", 0) for scan in lookups) == 0
