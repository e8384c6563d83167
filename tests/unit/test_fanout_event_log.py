"""Fanout records every event it reads in the event log, once per batch, before it commits
(fakes, no broker, no Postgres)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import asyncpg
import pytest

from services.fanout.event_log import (
    MAX_REASON_CHARS,
    REJECTED,
    ReadFrom,
    logged_id,
    rejected,
)
from shared.events import build_event
from shared.kafka import dumps
from tests.support.fanout_fakes import FakeConsumer, FakeEventLog, FakeProducer
from tests.unit.test_fanout_processor import (
    HAPPENED,
    NOW,
    ORG,
    TOPICS,
    TP0,
    TP1,
    WORKFLOW_ID,
    joined,
    message,
    processor,
    stamp,
)

READ_FROM = ReadFrom("ns.events", 0, 7, 1_700_000_000_000)


def event(**fields) -> bytes:
    return dumps({**json.loads(joined()), **fields})


async def test_each_accepted_event_is_logged_with_its_body_and_whom_it_reached():
    producer, consumer, log = FakeProducer(), FakeConsumer(), FakeEventLog()
    raw = joined()
    await processor(producer, consumer, workflows=True, events=log).process(
        {TP0: [message(TP0, 1, raw)]}
    )
    [entry] = log.entries.values()
    event_id = json.loads(raw)["id"]
    assert entry.id == logged_id(uuid.UUID(ORG), event_id)
    assert (entry.event_id, entry.event, entry.room_id, entry.status) == (
        event_id,
        "participant.joined",
        "room_1",
        "accepted",
    )
    [delivery] = [json.loads(v) for t, _, v, _ in producer.sent if t == TOPICS.deliveries]
    assert entry.payload == delivery["body"] and "tok_ada" not in entry.payload
    assert entry.webhook_ids == (uuid.UUID(delivery["webhook_id"]),)
    assert entry.workflow_ids == (uuid.UUID(WORKFLOW_ID),)
    assert entry.received_at == stamp() and entry.reason is None


async def test_an_event_no_one_subscribes_to_is_logged_too():
    log = FakeEventLog()
    raw = event(event="session.started", room={"id": "room_9"})
    raw = dumps({k: v for k, v in json.loads(raw).items() if k != "user"})
    await processor(FakeProducer(), FakeConsumer(), events=log).process(
        {TP0: [message(TP0, 1, raw)]}
    )
    [entry] = log.entries.values()
    assert (entry.event, entry.room_id, entry.webhook_ids, entry.workflow_ids) == (
        "session.started",
        "room_9",
        (),
        (),
    )
    assert json.loads(entry.payload)["room"] == {"id": "room_9"}


async def test_a_batch_is_one_write_and_a_batch_read_again_logs_nothing_new():
    log = FakeEventLog()
    batch = {TP0: [message(TP0, n, joined()) for n in range(3)], TP1: [message(TP1, 0, b"no")]}
    await processor(FakeProducer(), FakeConsumer(), events=log).process(batch)
    first = dict(log.entries)
    await processor(FakeProducer(), FakeConsumer(), events=log).process(batch)
    assert log.writes == 2 and log.entries == first
    assert len(first) == 3  # b"no" names no organization: the DLQ has it, no account does


async def test_a_failed_write_commits_nothing_and_rewinds_the_batch():
    consumer = FakeConsumer()
    log = FakeEventLog(fail_with=asyncpg.PostgresConnectionError("away"))
    with pytest.raises(asyncpg.PostgresConnectionError):
        await processor(FakeProducer(), consumer, events=log).process(
            {TP0: [message(TP0, 4, joined())]}
        )
    assert consumer.commits == [] and consumer.rewinds == [(TP0, 4)]


async def test_a_refused_event_of_a_readable_organization_is_logged_with_the_reason():
    log = FakeEventLog()
    raw = event(id="evt-bad", room={"name": "no id"})
    await processor(FakeProducer(), FakeConsumer(), events=log).process(
        {TP0: [message(TP0, 5, raw)]}
    )
    [entry] = log.entries.values()
    assert (entry.status, entry.event_id, entry.event, entry.organization_id) == (
        REJECTED,
        "evt-bad",
        "participant.joined",
        uuid.UUID(ORG),
    )
    assert entry.reason.startswith("room.id") and entry.payload is None


async def test_an_accepted_event_of_an_organization_that_is_no_uuid_is_not_logged():
    log = FakeEventLog()
    raw = event(organization_id="org_not_a_uuid")
    await processor(FakeProducer(), FakeConsumer(), events=log).process(
        {TP0: [message(TP0, 1, raw)]}
    )
    assert log.entries == {}


@pytest.mark.parametrize(
    "value",
    [None, b"", b"nope", b"[1]", b"\xff\xfe", b"[" * 100_000, dumps({"organization_id": 5})],
    ids=["tombstone", "empty", "not-json", "array", "not-utf8", "deep", "org-not-text"],
)
def test_a_refused_event_whose_organization_cannot_be_read_is_not_logged(value):
    assert rejected(value, "why", read_from=READ_FROM, stamp=NOW) is None


def test_what_a_refused_event_carries_is_made_storable_and_cut_to_size():
    doc = {"organization_id": ORG, "id": "a\u0000b" + "x" * 500, "event": "\ud800"}
    raw = json.dumps(doc).encode()  # NUL and the lone surrogate as JSON escapes
    entry = rejected(raw, "r" * 5000 + "\u0000", read_from=READ_FROM, stamp=NOW)
    assert entry is not None
    assert entry.event_id.startswith("a\\u0000b") and len(entry.event_id) <= 205
    assert entry.event == "\\ud800"
    assert len(entry.reason) == MAX_REASON_CHARS and "\u0000" not in entry.reason


def test_a_refused_event_is_identified_by_where_it_was_read():
    raw = dumps({"organization_id": ORG})
    again = rejected(raw, "why", read_from=READ_FROM, stamp=NOW)
    elsewhere = rejected(raw, "why", read_from=ReadFrom("ns.events", 0, 8, 1), stamp=NOW)
    assert again is not None and elsewhere is not None
    assert rejected(raw, "why", read_from=READ_FROM, stamp=NOW) == again
    assert elsewhere.id != again.id


async def test_within_a_batch_the_newest_first_order_follows_when_the_events_happened():
    log = FakeEventLog()
    times = [HAPPENED - timedelta(milliseconds=n) for n in (5, 1, 9)]
    raws = [
        dumps(
            build_event(
                event="participant.joined",
                organization_id=ORG,
                room={"id": "r"},
                user={"id": "u"},
                now=t,
            )
        )
        for t in times
    ]
    batch = {TP0: [message(TP0, n, raw) for n, raw in enumerate(raws)]}
    await processor(FakeProducer(), FakeConsumer(), events=log).process(batch)
    newest_first = sorted(log.entries.values(), key=lambda e: (e.received_at, e.id), reverse=True)
    expected = [json.loads(raws[n])["id"] for n in (1, 0, 2)]
    assert [e.event_id for e in newest_first] == expected


@pytest.mark.parametrize("spelling", [str.upper, lambda org: org.replace("-", "")])
async def test_an_organization_id_not_in_canonical_form_names_no_account(spelling):
    log = FakeEventLog()
    raw = event(organization_id=spelling(ORG))
    await processor(FakeProducer(), FakeConsumer(), events=log).process(
        {TP0: [message(TP0, 1, raw)]}
    )
    assert log.entries == {}


@pytest.mark.parametrize("event_id", ["evt_1", "", "Zoé 🎉", str(uuid.UUID(int=7)), "x" * 200])
def test_an_accepted_events_row_id_is_the_uuid5_the_registry_finds_it_by(event_id):
    # services/registry/events/repository.py looks `GET /events/{id}` up with uuid.uuid5.
    for organization in (uuid.UUID(ORG), uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)):
        assert logged_id(organization, event_id) == uuid.uuid5(organization, event_id)
