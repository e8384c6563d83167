"""Fanout stamps all it makes of one event with a time that is the same whenever that event
comes: the event's own `timestamp` when it is near its record's, else the record's timestamp,
and only when neither can be believed fanout's clock (services/fanout/stamps.py; fakes, no
broker, no Postgres)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from services.fanout.stamps import MAX_AHEAD, MAX_BEHIND, event_stamp, record_stamp
from shared.events import build_event
from shared.kafka import dumps
from shared.messages import DeliveryRequested, WorkflowRunRequested
from tests.support.fanout_fakes import FakeConsumer, FakeEventLog, FakeProducer
from tests.unit.test_fanout_processor import (
    APPENDED,
    APPENDED_MS,
    HAPPENED,
    NOW,
    ORG,
    RETENTION,
    TOPICS,
    TP0,
    TP1,
    joined,
    message,
    processor,
    stamp,
)

OLDEST = NOW - RETENTION


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


@pytest.mark.parametrize(
    ("timestamp_ms", "expected"),
    [
        (APPENDED_MS, APPENDED),
        (APPENDED_MS + 123, APPENDED + timedelta(milliseconds=123)),
        (ms(NOW + MAX_AHEAD), NOW + MAX_AHEAD),  # a clock a little ahead is believed
        (ms(OLDEST), OLDEST),
        (None, NOW),
        (-1, NOW),
        (ms(NOW + MAX_AHEAD) + 1, NOW),
        (ms(NOW + timedelta(days=365)), NOW),
        (ms(OLDEST) - 1, NOW),
        (0, NOW),  # 1970: a producer's clock never set
    ],
    ids=[
        "appended",
        "to-the-millisecond",
        "just-ahead",
        "oldest-kept",
        "none",
        "negative",
        "too-far-ahead",
        "a-year-ahead",
        "older-than-retention",
        "epoch",
    ],
)
def test_a_records_stamp_is_its_time_unless_it_cannot_be_believed(timestamp_ms, expected):
    assert record_stamp(timestamp_ms, now=NOW, oldest=OLDEST) == expected


def test_the_same_record_is_stamped_the_same_whenever_it_is_read():
    first = record_stamp(APPENDED_MS, now=NOW, oldest=OLDEST)
    later = NOW + timedelta(hours=1)
    assert record_stamp(APPENDED_MS, now=later, oldest=later - RETENTION) == first


@pytest.mark.parametrize(
    ("happened", "expected"),
    [
        (APPENDED - timedelta(seconds=1), APPENDED - timedelta(seconds=1)),
        (APPENDED - MAX_BEHIND, APPENDED - MAX_BEHIND),
        (APPENDED + MAX_AHEAD, APPENDED + MAX_AHEAD),
        (APPENDED - MAX_BEHIND - timedelta(microseconds=1), APPENDED),
        (APPENDED + MAX_AHEAD + timedelta(microseconds=1), APPENDED),
        (APPENDED - timedelta(days=3650), APPENDED),  # a producer's clock never set
    ],
    ids=["just-before", "oldest-believed", "a-little-ahead", "too-old", "too-far-ahead", "1970"],
)
def test_an_events_stamp_is_its_own_time_when_near_its_records(happened, expected):
    assert event_stamp(happened, APPENDED, oldest=OLDEST) == expected


def test_an_event_older_than_retention_keeps_takes_its_records_stamp():
    record = OLDEST + timedelta(minutes=30)
    assert event_stamp(OLDEST - timedelta(minutes=1), record, oldest=OLDEST) == record


def made(producer: FakeProducer) -> tuple[list[datetime], list[datetime]]:
    """The created_at of each delivery request and each run request sent, in order."""
    requests = [
        DeliveryRequested.model_validate_json(v).created_at
        for t, _, v, _ in producer.sent
        if t == TOPICS.deliveries
    ]
    runs = [
        WorkflowRunRequested.model_validate_json(v).created_at
        for t, _, v, _ in producer.sent
        if t == TOPICS.workflow_runs
    ]
    return requests, runs


async def test_a_record_read_twice_makes_the_same_stamps_and_one_log_entry():
    refused = dumps({"organization_id": ORG})  # not an event, but its account can be read
    batch = {
        TP0: [message(TP0, 4, joined()), message(TP0, 5, refused)],
        TP1: [message(TP1, 9, joined())],
    }
    log = FakeEventLog()
    first, again = FakeProducer(), FakeProducer()
    await processor(first, FakeConsumer(), workflows=True, events=log).process(batch)
    later = NOW + timedelta(minutes=5)  # fanout restarted: its clock moved on
    await processor(again, FakeConsumer(), workflows=True, events=log, now=later).process(batch)
    assert made(first) == made(again) == ([stamp()] * 2, [stamp()] * 2)
    kept = sorted((e.received_at, e.status) for e in log.entries.values())
    assert kept == [(HAPPENED, "accepted"), (HAPPENED, "accepted"), (APPENDED, "rejected")]


@pytest.mark.parametrize(
    "timestamp_ms",
    [None, -1, ms(NOW + timedelta(hours=1))],
    ids=["none", "negative", "a-fast-producer-clock"],
)
async def test_a_record_without_a_believable_timestamp_checks_its_event_against_the_clock(
    timestamp_ms,
):
    producer, log = FakeProducer(), FakeEventLog()
    raw, refused = joined(), dumps({"organization_id": ORG})
    batch = {
        TP0: [
            message(TP0, 2, raw, timestamp_ms=timestamp_ms),
            message(TP0, 3, refused, timestamp_ms=timestamp_ms),
        ]
    }
    await processor(producer, FakeConsumer(), workflows=True, events=log).process(batch)
    # The clock stands in for the record's time: the event, a few seconds older, keeps its own;
    # the refused record, with no time of its own, gets the clock.
    assert made(producer) == ([HAPPENED], [HAPPENED])
    logged = sorted((e.status, e.event_id, e.received_at) for e in log.entries.values())
    assert logged == [("accepted", json.loads(raw)["id"], HAPPENED), ("rejected", None, NOW)]


async def test_the_deliveries_runs_and_log_entry_of_an_event_share_its_stamp():
    producer, log = FakeProducer(), FakeEventLog()
    await processor(producer, FakeConsumer(), workflows=True, events=log).process(
        {TP0: [message(TP0, 1, joined())]}
    )
    [entry] = log.entries.values()
    assert entry.received_at == stamp()
    assert made(producer) == ([stamp()], [stamp()])


async def test_an_event_a_producer_publishes_twice_is_stamped_the_same_and_logged_once():
    """A producer's retry after a timeout: the same event in a second record, appended later."""
    producer, log = FakeProducer(), FakeEventLog()
    raw = joined()
    retried = ms(APPENDED + timedelta(seconds=5))
    batch = {TP0: [message(TP0, 1, raw), message(TP0, 2, raw, timestamp_ms=retried)]}
    await processor(producer, FakeConsumer(), workflows=True, events=log).process(batch)
    assert made(producer) == ([HAPPENED] * 2, [HAPPENED] * 2)
    assert [e.received_at for e in log.entries.values()] == [HAPPENED]


async def test_an_event_claiming_a_time_far_from_its_records_is_stamped_with_the_records():
    producer, log = FakeProducer(), FakeEventLog()
    long_ago = APPENDED - MAX_BEHIND - timedelta(minutes=1)
    raw = dumps(
        build_event(
            event="participant.joined",
            organization_id=ORG,
            room={"id": "room_1"},
            user={"id": "u"},
            now=long_ago,
        )
    )
    await processor(producer, FakeConsumer(), workflows=True, events=log).process(
        {TP0: [message(TP0, 1, raw)]}
    )
    assert made(producer) == ([APPENDED], [APPENDED])
