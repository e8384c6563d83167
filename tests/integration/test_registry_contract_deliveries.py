"""DeliveryLog's contract, on the fake and on Postgres alike."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from tests.support.registry_contracts import (
    attempt_row,
    delivery_row,
    subject_fixture,
    webhook_row,
)

pytestmark = pytest.mark.integration

subject = subject_fixture("deliveries")


async def test_a_webhook_is_found_in_its_own_account_only(subject):
    mine, theirs = await subject.account(), await subject.account()
    hook = webhook_row(mine)
    await subject.add_webhook(hook)
    assert await subject.repo.webhook(mine, hook.id) == hook
    assert await subject.repo.webhook(theirs, hook.id) is None


async def test_pages_are_the_webhooks_own_newest_first_by_status(subject):
    mine, theirs = await subject.account(), await subject.account()
    hook, other = webhook_row(mine), webhook_row(mine)
    rows = [delivery_row(hook.id, minute=m, status=("success", "failed")[m % 2]) for m in range(4)]
    for row in rows:
        await subject.record_delivery(mine, row)
    await subject.record_delivery(mine, delivery_row(other.id, minute=9))
    await subject.record_delivery(theirs, delivery_row(hook.id, minute=8))
    page = subject.repo.page
    assert await page(mine, hook.id, status=None, limit=10, after=None) == rows[::-1]
    assert await page(mine, hook.id, status="failed", limit=10, after=None) == [rows[3], rows[1]]
    after = (rows[3].created_at, rows[3].id)
    assert await page(mine, hook.id, status=None, limit=2, after=after) == [rows[2], rows[1]]


async def test_one_delivery_is_found_in_its_webhook_and_account_with_its_attempts_by_its_day(
    subject,
):
    mine, theirs = await subject.account(), await subject.account()
    hook = webhook_row(mine)
    row = delivery_row(hook.id, status="failed")
    await subject.record_delivery(mine, row, attempt_row(2), attempt_row(1))
    assert await subject.repo.find(mine, hook.id, row.id) == row
    assert await subject.repo.find(theirs, hook.id, row.id) is None
    assert await subject.repo.find(mine, uuid.uuid4(), row.id) is None
    assert await subject.repo.attempts(row.id, row.created_at) == [attempt_row(1), attempt_row(2)]
    assert await subject.repo.attempts(uuid.uuid4(), row.created_at) == []
    # An attempt is found with its delivery's created_at only: that is its day's partition.
    other_day = row.created_at - timedelta(days=1)
    assert await subject.repo.attempts(row.id, other_day) == []


async def test_attempts_come_with_their_request_headers_or_none_before_they_were_kept(subject):
    mine = await subject.account()
    row = delivery_row(webhook_row(mine).id)
    sent = {"webhook-signature": "v1,****", "X-Webhook-Attempt": "2", "X-Team": "****"}
    await subject.record_delivery(mine, row, attempt_row(1), attempt_row(2, sent))
    found = await subject.repo.attempts(row.id, row.created_at)
    assert [a.request_headers for a in found] == [None, sent]


async def test_orders_are_kept_in_the_outbox_in_order(subject):
    entries = [("roomhooks.deliveries", b"w", b"1"), ("roomhooks.deliveries", b"w", b"2")]
    await subject.repo.enqueue(entries)
    assert await subject.outbox() == entries


async def test_a_window_keeps_the_deliveries_created_from_since_until_before_until(subject):
    mine, theirs = await subject.account(), await subject.account()
    hook = webhook_row(mine)
    day = 24 * 60
    rows = [delivery_row(hook.id, minute=m) for m in (-day, 0, 1, day)]
    for row in rows:
        await subject.record_delivery(mine, row)
    await subject.record_delivery(theirs, delivery_row(hook.id, minute=2))
    before_day, at_t0, after_t0, next_day = rows

    async def page(*, since=None, until=None, after=None, limit=10):
        return await subject.repo.page(
            mine, hook.id, status=None, limit=limit, after=after, since=since, until=until
        )

    t0, t1 = at_t0.created_at, next_day.created_at
    assert await page(since=t0, until=t1) == [after_t0, at_t0]  # since in, until out
    assert await page(since=t0) == [next_day, after_t0, at_t0]
    assert await page(until=after_t0.created_at) == [at_t0, before_day]
    # A cursor is a position: after it, the window's deliveries older than it.
    after = (next_day.created_at, next_day.id)
    assert await page(since=before_day.created_at, until=t0, after=after) == [before_day]
    assert await page(since=t1 + timedelta(days=400)) == []
