"""Every filter combination `GET /events` offers is served by an index (no sequential scan; in
the page's order, or, for a selective filter, a bitmap of its few rows sorted), and what one
event costs to keep.

The plans are Postgres's own choice on a table shaped like a busy account's log (ANALYZEd);
`ROOMHOOKS_EVENT_LOG_SIZE_EVENTS` sets how many events the storage figure is measured on
(default 20,000; the figure in the docs was measured on 100,000).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.fanout.event_log import LoggedEvent, logged_id
from services.fanout.repository import PostgresEventLog
from services.registry.events.models import EventFilters
from services.registry.events.repository import FIND_EVENT, page_query
from shared.events import Scope, build_event, event_names, parse_event, render_payload

pytestmark = pytest.mark.integration

T0 = datetime(2026, 5, 1, tzinfo=UTC)
ROOM_EVENTS = event_names(Scope.ROOM)
ROOMS = 10  # a busy account: each room and each event name holds thousands of events
MAX_SORTED_ROWS = 1_000
SIZE_EVENTS = int(os.environ.get("ROOMHOOKS_EVENT_LOG_SIZE_EVENTS", "20000"))


def representative(org: uuid.UUID, n: int, rng: random.Random) -> LoggedEvent:
    """A `participant.joined` as fanout logs it: the body webhooks get, one webhook reached,
    a workflow now and then, one event in a hundred refused."""
    room = {"id": f"room-{rng.randrange(ROOMS)}", "name": "Design review"}
    user = {"id": f"user-{rng.randrange(10_000)}", "name": "Ada Lovelace", "token": "tok"}
    at = T0 + timedelta(milliseconds=n)
    raw = build_event(
        event="participant.joined", organization_id=str(org), room=room, user=user, now=at
    )
    body = render_payload(parse_event(raw)).decode()
    refused = n % 100 == 99
    return LoggedEvent(
        id=uuid.uuid4() if refused else logged_id(org, raw["id"]),
        organization_id=org,
        event_id=raw["id"],
        event=rng.choice(ROOM_EVENTS),
        room_id=room["id"],
        status="rejected" if refused else "accepted",
        reason="room.id: field required" if refused else None,
        payload=None if refused else body,
        webhook_ids=() if refused else (uuid.uuid4(),),
        workflow_ids=(uuid.uuid4(),) if n % 4 == 0 and not refused else (),
        received_at=at,
    )


async def fill(pool, org: uuid.UUID, count: int, *, batch: int = 500) -> None:
    rng = random.Random(16)
    writer = PostgresEventLog(pool)
    for start in range(0, count, batch):
        await writer.record([representative(org, n, rng) for n in range(start, start + batch)])
    await pool.execute("ANALYZE events.events")


FILTERS = {
    "event": {"event": "participant.joined"},
    "room": {"room_id": "room-7"},
    "status": {"status": "rejected"},
    "accepted": {"status": "accepted"},
    "since": {"since": T0 + timedelta(seconds=5)},
    "until": {"until": T0 + timedelta(seconds=15)},
}


def combinations() -> list[tuple[str, ...]]:
    names = [n for n in FILTERS if n != "accepted"]
    found = [c for r in range(len(names) + 1) for c in itertools.combinations(names, r)]
    return [*found, ("accepted",), ("accepted", "event"), ("accepted", "room")]


@pytest.mark.parametrize("cursor", [False, True], ids=["first-page", "next-page"])
async def test_every_filter_combination_is_read_from_an_index_in_page_order(pool, cursor):
    org, other = uuid.uuid4(), uuid.uuid4()
    await fill(pool, org, 20_000)
    await fill(pool, other, 5_000)
    after = (T0 + timedelta(seconds=12), uuid.uuid4()) if cursor else None
    problems, used = [], {}
    for combination in combinations():
        fields = {k: v for name in combination for k, v in FILTERS[name].items()}
        sql, args = page_query(org, EventFilters(**fields), limit=51, after=after)
        nodes = await plan_nodes(pool, sql, *args)
        kinds = {n["Node Type"] for n in nodes}
        indexes = {n.get("Index Name") for n in nodes} - {None}
        used["+".join(combination) or "none"] = sorted(indexes)
        # A sort is the planner's choice only where the filter is selective: it then reads the
        # few matching rows through the index's bitmap and sorts them.
        sorted_rows = max((n["Plan Rows"] for n in nodes if n["Node Type"] == "Sort"), default=0)
        if "Seq Scan" in kinds or not indexes or sorted_rows > MAX_SORTED_ROWS:
            problems.append(f"{combination}: {sorted(kinds)} {sorted(indexes)} {sorted_rows}")
    print(json.dumps(used, indent=1))
    assert problems == [], "\n".join(problems)
    assert used["none"] == ["events_log_idx"]
    assert used["event"] == ["events_by_event_idx"]
    assert used["room"] == ["events_by_room_idx"]
    assert used["status"] == ["events_rejected_idx"]


async def plan_nodes(pool, sql: str, *args: object) -> list[dict]:
    """Every node of the plan Postgres picks for `sql`."""
    plan = await pool.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args)
    doc = json.loads(plan) if isinstance(plan, str) else plan
    return list(_nodes(doc[0]["Plan"]))


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def test_one_event_is_found_by_primary_key_or_its_refused_id(pool):
    org = uuid.uuid4()
    await fill(pool, org, 5_000)
    nodes = await plan_nodes(
        pool,
        FIND_EVENT,
        org,
        logged_id(org, "evt"),
        "evt",
    )
    indexes = {n.get("Index Name") for n in nodes} - {None}
    assert indexes == {"events_pkey", "events_rejected_by_id_idx"}


async def test_what_one_event_costs_to_keep(pool):
    org = uuid.uuid4()
    await fill(pool, org, SIZE_EVENTS)
    await pool.execute("VACUUM ANALYZE events.events")
    table = await pool.fetchval("SELECT pg_total_relation_size('events.events')")
    heap = await pool.fetchval("SELECT pg_table_size('events.events')")
    per_event = table / SIZE_EVENTS
    print(
        f"\nevent log: {SIZE_EVENTS:,} events, {table:,} bytes in all ({heap:,} table,"
        f" {table - heap:,} indexes): {per_event:,.0f} bytes/event,"
        f" {per_event * 1e6 / 2**30:,.2f} GiB per million events"
    )
    assert per_event < 2_000  # a body of ~330 bytes, kept once; the rest is ids and indexes
