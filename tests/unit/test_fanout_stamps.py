"""Fanout stamps all it makes of a record with the record's own timestamp, so a record read
twice is stamped the same; only a record without a believable timestamp gets fanout's clock
(services/fanout/stamps.py; fakes, no broker, no Postgres)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from services.fanout.stamps import MAX_AHEAD, record_stamp
from shared.kafka import dumps
from shared.messages import DeliveryRequested, WorkflowRunRequested
from tests.support.fanout_fakes import FakeConsumer, FakeEventLog, FakeProducer
from tests.unit.test_fanout_processor import (
    APPENDED,
    APPENDED_MS,
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
    ("timestamp_ms", "offset", "expected"),
    [
        (APPENDED_MS, 0, APPENDED),
        (APPENDED_MS + 123, 7, APPENDED + timedelta(milliseconds=123, microseconds=7)),
        (APPENDED_MS, 12_345, APPENDED + timedelta(microseconds=345)),
        (ms(NOW + MAX_AHEAD), 0, NOW + MAX_AHEAD),  # a clock a little ahead is believed
        (ms(OLDEST), 0, OLDEST),
        (None, 3, NOW + timedelta(microseconds=3)),
        (-1, 3, NOW + timedelta(microseconds=3)),
        (ms(NOW + MAX_AHEAD) + 1, 3, NOW + timedelta(microseconds=3)),
        (ms(NOW + timedelta(days=365)), 0, NOW),
        (ms(OLDEST) - 1, 0, NOW),
        (0, 0, NOW),  # 1970: a producer's clock never set
    ],
    ids=[
        "appended",
        "to-the-millisecond",
        "offset-spread",
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
def test_the_stamp_is_the_records_time_unless_it_cannot_be_believed(timestamp_ms, offset, expected):
    assert record_stamp(timestamp_ms, offset, now=NOW, oldest=OLDEST) == expected


def test_the_same_record_is_stamped_the_same_whenever_it_is_read():
    first = record_stamp(APPENDED_MS, 5, now=NOW, oldest=OLDEST)
    later = NOW + timedelta(hours=1)
    assert record_stamp(APPENDED_MS, 5, now=later, oldest=later - RETENTION) == first


def test_records_of_one_millisecond_keep_their_order_by_offset():
    stamps = [record_stamp(APPENDED_MS, n, now=NOW, oldest=OLDEST) for n in range(10, 20)]
    assert stamps == sorted(stamps) and len(set(stamps)) == 10


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
    assert made(first) == made(again) == ([stamp(4), stamp(9)], [stamp(4), stamp(9)])
    kept = sorted((e.received_at, e.status) for e in log.entries.values())
    assert kept == [(stamp(4), "accepted"), (stamp(5), "rejected"), (stamp(9), "accepted")]


@pytest.mark.parametrize(
    "timestamp_ms",
    [None, -1, ms(NOW + timedelta(hours=1))],
    ids=["none", "negative", "a-fast-producer-clock"],
)
async def test_a_record_without_a_believable_timestamp_is_stamped_with_the_clock(timestamp_ms):
    producer, log = FakeProducer(), FakeEventLog()
    raw = joined()
    batch = {TP0: [message(TP0, 2, raw, timestamp_ms=timestamp_ms)]}
    await processor(producer, FakeConsumer(), workflows=True, events=log).process(batch)
    clock = stamp(2, NOW)
    assert made(producer) == ([clock], [clock])
    [entry] = log.entries.values()
    assert (entry.event_id, entry.received_at) == (json.loads(raw)["id"], clock)


async def test_the_deliveries_runs_and_log_entry_of_an_event_share_its_stamp():
    producer, log = FakeProducer(), FakeEventLog()
    await processor(producer, FakeConsumer(), workflows=True, events=log).process(
        {TP0: [message(TP0, 1, joined())]}
    )
    [entry] = log.entries.values()
    assert entry.received_at == stamp(1)
    assert made(producer) == ([stamp(1)], [stamp(1)])
