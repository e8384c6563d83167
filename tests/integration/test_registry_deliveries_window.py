"""A webhook's deliveries within a time window, over real HTTP on Postgres: `since` and `until`
bound the page (since inclusive, until exclusive), bad values are 400s naming the field, a
cursor keeps walking under another window, and the page's statement plans only the window's
days (EXPLAIN ANALYZE, for the values and under the generic plan)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.delivery.retention import DELIVERIES
from services.registry.deliveries.repository import PostgresDeliveryLog
from shared.partitions import day_start, planned_limit
from tests.integration.test_log_pages_read_newest_days_first import (
    DAYS,
    LOGS,
    NOW,
    filled,
    partitioned_as_retention_leaves_them,
    scanned_days,
)
from tests.support.plans import KeptStatements, executed_plan, nodes

pytestmark = pytest.mark.integration

TODAY = day_start(datetime.now(UTC).date())
# Two days ago and yesterday: their noon and the instants the window tests stand on.
DAY_1, DAY_2 = TODAY - timedelta(days=2), TODAY - timedelta(days=1)


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


async def created_webhook(registry, account) -> str:
    resp = await registry.http.post(
        registry.webhooks_url(account),
        json={"url": "https://window.example.com/hook", "events": ["participant.joined"]},
        headers=account.auth(),
    )
    assert resp.status == 201, await resp.text()
    return (await resp.json())["data"]["webhook"]["id"]


async def stored(pool, account_id: str, webhook_id: str, *stamps: datetime) -> list[str]:
    """Deliveries as the delivery service stores them, one at each instant; their ids."""
    ids = [uuid.uuid4() for _ in stamps]
    await pool.executemany(
        "INSERT INTO delivery.deliveries (id, webhook_id, organization_id, event_id, event,"
        " payload, status, attempts, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, 'participant.joined', '{}', 'success', 1, $5, $5)",
        [
            (i, uuid.UUID(webhook_id), uuid.UUID(account_id), f"evt-{i}", at)
            for i, at in zip(ids, stamps, strict=True)
        ],
    )
    return [str(i) for i in ids]


async def listed(registry, account, webhook_id: str, **params: str) -> tuple[int, dict]:
    resp = await registry.http.get(
        registry.webhooks_url(account, webhook_id) + "/deliveries",
        params=params,
        headers=account.auth(),
    )
    return resp.status, await resp.json()


async def test_a_window_lists_the_deliveries_created_from_since_until_before_until(registry, pool):
    alice, bob = registry.alice, registry.bob
    hook = await created_webhook(registry, alice)
    first, at_start, inside, at_end = await stored(
        pool, alice.id, hook, DAY_1 + timedelta(hours=12), DAY_2, DAY_2 + timedelta(hours=12),
        TODAY,
    )  # fmt: skip
    # Another account's delivery under the same webhook id, inside the window: never shown.
    await stored(pool, bob.id, hook, DAY_2 + timedelta(hours=1))

    status, body = await listed(registry, alice, hook, since=iso(DAY_2), until=iso(TODAY))
    assert status == 200, body
    assert [d["id"] for d in body["data"]["deliveries"]] == [inside, at_start]
    # The same window written with another offset is the same window.
    since = DAY_2.astimezone(timezone(timedelta(hours=9)))
    status, body = await listed(registry, alice, hook, since=since.isoformat(), until=iso(TODAY))
    assert [d["id"] for d in body["data"]["deliveries"]] == [inside, at_start]
    status, body = await listed(registry, alice, hook, since=iso(DAY_2))
    assert [d["id"] for d in body["data"]["deliveries"]] == [at_end, inside, at_start]
    status, body = await listed(registry, alice, hook, until=iso(DAY_2), status="success")
    assert [d["id"] for d in body["data"]["deliveries"]] == [first]
    # Empty counts as left out, as everywhere in this API.
    status, body = await listed(registry, alice, hook, since="", until="")
    assert len(body["data"]["deliveries"]) == 4
    # A window far beyond what is kept, on either side, is empty rather than an error.
    for window in ({"since": "9999-12-31T23:59:59Z"}, {"until": "0001-01-01T00:00:00Z"}):
        status, body = await listed(registry, alice, hook, **window)
        assert (status, body["data"]["deliveries"]) == (200, []), window
    status, _ = await listed(registry, bob, hook, since=iso(DAY_2))
    assert status == 404


async def test_a_cursor_made_under_one_window_walks_on_under_another(registry, pool):
    alice = registry.alice
    hook = await created_webhook(registry, alice)
    stamps = [DAY_1 + timedelta(hours=h) for h in (1, 2, 3)] + [DAY_2 + timedelta(hours=1)]
    oldest, older, old, newest = await stored(pool, alice.id, hook, *stamps)

    status, body = await listed(registry, alice, hook, limit="1", since=iso(DAY_2))
    assert [d["id"] for d in body["data"]["deliveries"]] == [newest]
    cursor = body["data"]["next_cursor"]
    assert cursor is None  # the window holds one
    status, body = await listed(registry, alice, hook, limit="2")
    cursor = body["data"]["next_cursor"]
    assert [d["id"] for d in body["data"]["deliveries"]] == [newest, old]
    # That cursor under a window: the window's deliveries before it, paged on.
    window = {"since": iso(DAY_1 + timedelta(hours=2)), "until": iso(DAY_2)}
    status, body = await listed(registry, alice, hook, limit="2", cursor=cursor, **window)
    assert status == 200, body
    assert [d["id"] for d in body["data"]["deliveries"]] == [older]
    assert body["data"]["next_cursor"] is None
    assert oldest not in {d["id"] for d in body["data"]["deliveries"]}


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"since": "yesterday"}, "since", "RFC 3339"),
        ({"since": "2026-05-29T10:06:00"}, "since", "with an offset"),
        ({"since": "2026-05-29"}, "since", "RFC 3339"),
        ({"until": "2026-05-29T25:06:00Z"}, "until", "RFC 3339"),
        ({"until": "0001-01-01T00:00:00+01:00"}, "until", "RFC 3339"),
        ({"since": "2026-05-29T10:00:00Z", "until": "2026-05-29T10:00:00Z"}, "until", "later"),
        ({"since": "2026-05-29T10:00:00Z", "until": "2026-05-29T09:00:00Z"}, "until", "later"),
        ({"since": "2026-05-29T10:00:00Z\x00"}, "since", "RFC 3339"),
    ],
)
async def test_a_bad_window_is_a_400_naming_the_field(registry, params, field, message):
    alice = registry.alice
    hook = await created_webhook(registry, alice)
    status, body = await listed(registry, alice, hook, **params)
    assert status == 400, body
    error = body["error"]
    assert error["code"] == "validation_error"
    assert [d["field"] for d in error["details"]] == [field]
    assert message in error["details"][0]["message"]


async def test_both_bounds_wrong_are_named_in_one_answer(registry):
    alice = registry.alice
    hook = await created_webhook(registry, alice)
    status, body = await listed(registry, alice, hook, since="soon", until="later")
    assert status == 400
    assert [d["field"] for d in body["error"]["details"]] == ["since", "until"]


def window_of_days(first: int, last: int) -> tuple[datetime, datetime]:
    """From 09:30 on the day `first` days before NOW to 17:00 on the day `last` days before."""
    start = day_start(NOW.date() - timedelta(days=first)) + timedelta(hours=9, minutes=30)
    return start, day_start(NOW.date() - timedelta(days=last)) + timedelta(hours=17)


@pytest.mark.parametrize("generic", [False, True], ids=["custom-plan", "generic-plan"])
@pytest.mark.parametrize("cursor", [False, True], ids=["first-page", "next-page"])
async def test_a_windows_page_plans_only_the_windows_days(pool, generic, cursor):
    log = LOGS["deliveries"]
    await partitioned_as_retention_leaves_them(pool, DELIVERIES)
    org, owner = await filled(pool, log)
    since, until = window_of_days(6, 4)  # three days, none of them today's
    window_days = {(since + timedelta(days=n)).date() for n in range(3)}
    after = (until - timedelta(hours=3), uuid.uuid4()) if cursor else None
    read = planned_limit(51)

    deliveries = PostgresDeliveryLog(pool, **DAYS)
    page = await deliveries.page(
        org, owner, status=None, limit=read, after=after, since=since, until=until
    )
    assert len(page) == read  # the premise: the window holds more than a page
    assert all(since <= row.created_at < until for row in page)

    kept = KeptStatements()
    await PostgresDeliveryLog(kept, **DAYS).page(
        org, owner, status=None, limit=read, after=after, since=since, until=until
    )
    [(sql, args)] = kept.statements
    async with pool.acquire() as conn:
        plan = await executed_plan(conn, sql, args, generic=generic)
    days = scanned_days(plan, DELIVERIES.table)
    assert None not in days, "the default partition is in the plan"
    assert set(days) == window_days, f"planned: {sorted(days)}"
    # Planned, not merely pruned as the plan starts: the generic plan (the one cached and run
    # from) holds no other day's partition to lock and drop at each execution.
    appends = [node for node in nodes(plan) if node["Node Type"] == "Append"]
    assert appends and all(node.get("Subplans Removed", 0) == 0 for node in appends), appends
    assert "Merge Append" not in {node["Node Type"] for node in nodes(plan)}


async def test_a_window_outside_the_kept_days_reads_nothing(pool):
    kept = KeptStatements()
    deliveries = PostgresDeliveryLog(kept, **DAYS)
    since = NOW + timedelta(days=30)
    assert (
        await deliveries.page(
            uuid.uuid4(), uuid.uuid4(), status=None, limit=51, after=None, since=since, until=None
        )
        == []
    )
    assert kept.statements == []
