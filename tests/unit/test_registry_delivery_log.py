"""DeliveryLogService against the in-memory log: a webhook's deliveries in its own account,
and redelivery and test-ping orders through the outbox."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.registry.deliveries.repository import page_query, window_days
from services.registry.deliveries.service import DeliveryLogService
from services.registry.errors import NotFound
from shared.kafka import Topics
from shared.messages import delivery_id_for
from tests.support.registry_contracts import T0, attempt_row, delivery_row, webhook_row
from tests.support.registry_fakes import FakeDeliveryLog

ACCOUNT = uuid.uuid4()
TOPICS = Topics()
HOOK = webhook_row(ACCOUNT, name="ci")


@pytest.fixture
def log() -> FakeDeliveryLog:
    log = FakeDeliveryLog()
    log.webhooks[HOOK.id] = HOOK
    return log


@pytest.fixture
def deliveries(log) -> DeliveryLogService:
    return DeliveryLogService(log, TOPICS, lambda: T0)


async def test_the_log_of_an_unknown_webhook_is_not_found(deliveries):
    with pytest.raises(NotFound):
        await deliveries.list(str(ACCOUNT), str(uuid.uuid4()), limit=5, status=None, cursor=None)
    with pytest.raises(NotFound):
        await deliveries.send_test(str(uuid.uuid4()), str(HOOK.id))


async def test_a_delivery_shows_its_attempts_and_a_retry_only_while_pending(deliveries, log):
    due = T0 + timedelta(seconds=5)
    retrying = replace(delivery_row(HOOK.id, status="pending"), next_attempt_at=due)
    failed = replace(delivery_row(HOOK.id, minute=1, status="failed"), next_attempt_at=due)
    log.record(ACCOUNT, retrying, attempt_row(2), attempt_row(1))
    log.record(ACCOUNT, failed)
    delivery, attempts = await deliveries.get(str(ACCOUNT), str(HOOK.id), str(retrying.id))
    assert delivery.next_retry_at == due
    assert [a.attempt for a in attempts] == [1, 2]
    page = await deliveries.list(str(ACCOUNT), str(HOOK.id), limit=5, status=None, cursor=None)
    assert [(d.id, d.next_retry_at) for d in page.deliveries] == [
        (str(failed.id), None),
        (str(retrying.id), due),
    ]


async def test_a_redelivery_is_an_order_keyed_by_the_webhook(deliveries, log):
    row = delivery_row(HOOK.id, status="failed")
    log.record(ACCOUNT, row)
    await deliveries.redeliver(str(ACCOUNT), str(HOOK.id), str(row.id).upper())
    [(topic, key, value)] = log.outbox
    assert (topic, key) == (TOPICS.deliveries, str(HOOK.id).encode())
    assert json.loads(value)["delivery_id"] == str(row.id)


async def test_redelivering_an_unknown_delivery_orders_nothing(deliveries, log):
    with pytest.raises(NotFound):
        await deliveries.redeliver(str(ACCOUNT), str(HOOK.id), str(uuid.uuid4()))
    assert log.outbox == []


async def test_a_test_ping_is_a_delivery_request_of_webhook_test(deliveries, log):
    delivery_id, event_id = await deliveries.send_test(str(ACCOUNT), str(HOOK.id))
    assert delivery_id == delivery_id_for(str(HOOK.id), event_id)
    [(topic, _, value)] = log.outbox
    order = json.loads(value)
    assert topic == TOPICS.deliveries and order["event"] == "webhook.test"
    assert json.loads(order["body"])["webhook"] == {
        "id": str(HOOK.id),
        "name": "ci",
        "url": HOOK.url,
    }


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


KEPT = (at("2026-04-01T00:00"), at("2026-05-03T00:00"))


@pytest.mark.parametrize(
    ("since", "until", "days"),
    [
        (None, None, KEPT),
        # Whole UTC days: the day `since` falls in, to the end of the day before `until`.
        ("2026-05-01T10:00", "2026-05-01T11:00", ("2026-05-01", "2026-05-02")),
        ("2026-04-20T23:59", "2026-04-22T00:00", ("2026-04-20", "2026-04-22")),
        ("2026-04-20T00:00", "2026-04-22T00:00:01", ("2026-04-20", "2026-04-23")),
        # Open on a side: the kept day at that side.
        ("2026-05-01T10:00", None, ("2026-05-01", "2026-05-03")),
        (None, "2026-04-02T10:00", ("2026-04-01", "2026-04-03")),
        # Wider than what is kept: what is kept.
        ("2020-01-01T00:00", "2030-01-01T00:00", KEPT),
    ],
)
def test_a_windows_page_names_only_the_kept_days_the_window_touches(since, until, days):
    if days != KEPT:
        days = (at(f"{days[0]}T00:00"), at(f"{days[1]}T00:00"))
    window = (since and at(since), until and at(until))
    assert window_days(KEPT, *window) == days


def test_a_window_outside_the_kept_days_names_an_empty_span():
    start, end = window_days(KEPT, at("2026-06-01T00:00"), None)
    assert start >= end
    start, end = window_days(KEPT, None, at("2026-04-01T00:00"))
    assert start >= end
    # Past year 9999 there is no day after: the kept end stands.
    assert window_days(KEPT, None, datetime(9999, 12, 31, 12, tzinfo=UTC)) == KEPT


def test_without_kept_days_only_a_closed_window_is_named_as_days():
    assert window_days(None, at("2026-05-01T10:00"), None) is None
    assert window_days(None, None, None) is None
    assert window_days(None, at("2026-05-01T10:00"), at("2026-05-02T10:00")) == (
        at("2026-05-01T00:00"),
        at("2026-05-03T00:00"),
    )


def test_a_windows_statement_is_the_same_text_for_every_window_within_the_same_days():
    def text(since: str, until: str) -> str:
        sql, args = page_query(
            ACCOUNT,
            HOOK.id,
            status=None,
            limit=51,
            after=None,
            kept=KEPT,
            since=at(since),
            until=at(until),
        )
        assert args[-2:] == [at(since), at(until)]  # the window itself: parameters
        return sql

    one = text("2026-05-01T10:00", "2026-05-01T11:00")
    assert one == text("2026-05-01T00:00", "2026-05-01T23:59")
    assert one != text("2026-04-30T10:00", "2026-05-01T11:00")
    assert "created_at >= '2026-05-01T00:00:00+00:00'" in one
    assert "created_at < '2026-05-02T00:00:00+00:00'" in one


async def test_a_page_of_a_window_lists_its_deliveries_and_a_cursor_follows_the_next_window(
    deliveries, log
):
    rows = [delivery_row(HOOK.id, minute=m) for m in range(5)]
    for row in rows:
        log.record(ACCOUNT, row)
    since, until = rows[1].created_at, rows[4].created_at

    async def listed(cursor=None, **window):
        return await deliveries.list(
            str(ACCOUNT), str(HOOK.id), limit=2, status=None, cursor=cursor, **window
        )

    first = await listed(since=since, until=until)
    assert [d.id for d in first.deliveries] == [str(rows[3].id), str(rows[2].id)]
    assert first.next_cursor is not None
    # The cursor under a window that reaches further back: the rows before it in that one.
    wider = await listed(first.next_cursor, since=rows[0].created_at, until=until)
    assert [d.id for d in wider.deliveries] == [str(rows[1].id), str(rows[0].id)]
