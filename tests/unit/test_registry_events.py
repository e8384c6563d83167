"""The event log as the registry serves it: EventLogService against the in-memory log, and
the query's filters refused with a 400 naming the field."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.registry.errors import NotFound
from services.registry.events.models import EventFilters
from services.registry.events.routes import event_filters
from services.registry.events.service import EventLogService
from services.registry.http import ApiError
from shared.messages import delivery_id_for, run_id_for
from tests.support.registry_fakes import FakeEventLog, event_row

ACCOUNT = uuid.uuid4()
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def log() -> FakeEventLog:
    return FakeEventLog()


@pytest.fixture
def events(log) -> EventLogService:
    return EventLogService(log)


async def test_pages_walk_the_accounts_events_newest_first_with_a_cursor(events, log):
    rows = [event_row(ACCOUNT, received_at=T0 + timedelta(seconds=n)) for n in range(5)]
    for row in rows:
        log.record(ACCOUNT, row)
    other = uuid.uuid4()
    log.record(other, event_row(other, received_at=T0 + timedelta(hours=1)))
    first = await events.list(str(ACCOUNT), EventFilters(), limit=3, cursor=None)
    assert [e.id for e in first.events] == [r.event_id for r in rows[:1:-1]]
    second = await events.list(str(ACCOUNT), EventFilters(), limit=3, cursor=first.next_cursor)
    assert [e.id for e in second.events] == [rows[1].event_id, rows[0].event_id]
    assert second.next_cursor is None


async def test_one_event_shows_its_payload_and_the_delivery_and_run_of_each_it_reached(events, log):
    hook, gone, flow = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    row = event_row(ACCOUNT, event_id="evt-1", webhook_ids=[hook, gone], workflow_ids=[flow])
    log.record(ACCOUNT, row)
    delivery = uuid.UUID(delivery_id_for(str(hook), "evt-1"))
    log.record_status("delivery", ACCOUNT, delivery, "success")
    run = uuid.UUID(run_id_for(str(flow), "evt-1"))
    log.record_status("run", ACCOUNT, run, "error")
    detail = await events.get(str(ACCOUNT), "evt-1")
    assert detail.payload == row.payload
    assert (detail.event.webhooks, detail.event.workflows) == (2, 1)
    assert [(w.webhook_id, w.delivery_id, w.status) for w in detail.webhooks] == [
        (str(hook), str(delivery), "success"),
        (str(gone), delivery_id_for(str(gone), "evt-1"), None),  # not stored (yet)
    ]
    assert [(w.workflow_id, w.execution_id, w.status) for w in detail.workflows] == [
        (str(flow), str(run), "error")
    ]


async def test_a_rejected_event_is_found_by_the_id_it_carried_unless_one_was_accepted(events, log):
    log.record(
        ACCOUNT, event_row(ACCOUNT, event_id="evt-2", status="rejected", reason="room.id: missing")
    )
    detail = await events.get(str(ACCOUNT), "evt-2")
    assert (detail.event.status, detail.event.reason) == ("rejected", "room.id: missing")
    log.record(ACCOUNT, event_row(ACCOUNT, event_id="evt-2", received_at=T0 - timedelta(days=1)))
    assert (await events.get(str(ACCOUNT), "evt-2")).event.status == "accepted"


@pytest.mark.parametrize("event_id", ["evt-x", "a\u0000b", "\ud800", "x" * 201])
async def test_an_event_not_in_the_account_is_not_found(events, log, event_id):
    other = uuid.uuid4()
    log.record(other, event_row(other, event_id="evt-x"))
    with pytest.raises(NotFound):
        await events.get(str(ACCOUNT), event_id)
    with pytest.raises(NotFound):
        await events.get("not-a-uuid", event_id)


def test_filters_are_read_from_the_query_and_empty_ones_are_left_out():
    query = {
        "event": "session.started",
        "roomId": "room_1",
        "status": "rejected",
        "since": "2026-05-01T12:00:00+02:00",
        "until": "2026-05-01t12:00:00.5z",
    }
    assert event_filters(query) == EventFilters(
        event="session.started",
        room_id="room_1",
        status="rejected",
        since=datetime(2026, 5, 1, 10, 0, tzinfo=UTC),
        until=datetime(2026, 5, 1, 12, 0, 0, 500000, tzinfo=UTC),
    )
    assert event_filters({}) == EventFilters()
    assert event_filters(dict.fromkeys(("event", "roomId", "status", "since", "until"), "")) == (
        EventFilters()
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event", "participant.joined2"),
        ("roomId", "r" * 201),
        ("roomId", "a\u0000b"),
        ("status", "pending"),
        ("since", "yesterday"),
        ("since", "2026-05-01T12:00:00"),  # no offset
        ("since", "20260501T120000Z"),  # ISO 8601's basic form, not RFC 3339
        ("since", "2026-02-30T12:00:00Z"),
        ("since", "0001-01-01T00:00:00+01:00"),  # before year 1 once in UTC
        ("until", "9999-12-31T23:59:59-01:00"),
    ],
)
def test_a_bad_filter_is_a_400_naming_its_field(field, value):
    with pytest.raises(ApiError) as refused:
        event_filters({field: value})
    assert refused.value.status == 400
    assert [d["field"] for d in refused.value.details] == [field]


def test_an_until_not_after_since_is_refused_naming_until():
    with pytest.raises(ApiError) as refused:
        event_filters({"since": "2026-05-01T12:00:00Z", "until": "2026-05-01T12:00:00Z"})
    assert [d["field"] for d in refused.value.details] == ["until"]


def test_every_bad_filter_is_named_at_once():
    with pytest.raises(ApiError) as refused:
        event_filters({"event": "nope", "status": "nope", "until": "nope"})
    assert [d["field"] for d in refused.value.details] == ["event", "status", "until"]
