"""The contract of fanout's event log writer (`EventLogWriter` in services/fanout/processor.py),
run against the fake of its unit tests (tests/support/fanout_fakes.py) and Postgres."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from services.fanout.event_log import LoggedEvent, ReadFrom, rejected
from services.fanout.processor import EventLogWriter
from services.fanout.repository import PostgresEventLog
from tests.support.fanout_fakes import FakeEventLog

pytestmark = pytest.mark.integration

NOW = datetime(2026, 5, 29, 10, 6, 1, 500000, tzinfo=UTC)
ORG = uuid.uuid4()


Key = tuple[uuid.UUID, datetime]


@dataclass
class Writer:
    writer: EventLogWriter
    stored: Callable[[], Awaitable[dict[Key, LoggedEvent]]]  # every entry, by (id, received_at)


@pytest.fixture(params=["fake", "postgres"])
def subject(request: pytest.FixtureRequest) -> Writer:
    if request.param == "fake":
        fake = FakeEventLog()

        async def kept() -> dict[Key, LoggedEvent]:
            return dict(fake.entries)

        return Writer(fake, kept)
    pool = request.getfixturevalue("pool")

    async def stored() -> dict[Key, LoggedEvent]:
        rows = await pool.fetch("SELECT * FROM events.events")
        return {
            (r["id"], r["received_at"]): LoggedEvent(
                **{
                    **dict(r),
                    "webhook_ids": tuple(r["webhook_ids"]),
                    "workflow_ids": tuple(r["workflow_ids"]),
                }
            )
            for r in rows
        }

    return Writer(PostgresEventLog(pool), stored)


def key(e: LoggedEvent) -> Key:
    return e.id, e.received_at


def entry(n: int, **fields) -> LoggedEvent:
    values = {
        "id": uuid.uuid4(),
        "organization_id": ORG,
        "event_id": f"evt-{n}",
        "event": "participant.joined",
        "room_id": "room_1",
        "status": "accepted",
        "reason": None,
        "payload": f'{{"id":"evt-{n}","data":{{}}}}',
        "webhook_ids": (uuid.uuid4(), uuid.uuid4()),
        "workflow_ids": (uuid.uuid4(),),
        "received_at": NOW,
    }
    return LoggedEvent(**(values | fields))


async def test_recorded_entries_are_kept_as_given(subject):
    entries = [entry(n) for n in range(3)]
    entries.append(entry(3, webhook_ids=(), workflow_ids=(), room_id=None, payload=None))
    await subject.writer.record(entries)
    assert await subject.stored() == {key(e): e for e in entries}


async def test_an_entry_recorded_again_keeps_the_first_and_the_rest_are_added(subject):
    first = entry(1)
    await subject.writer.record([first])
    again = first._replace(payload='{"changed":true}')
    added = entry(2)
    await subject.writer.record([again, added])
    assert await subject.stored() == {key(first): first, key(added): added}


async def test_an_entry_stamped_otherwise_is_another_entry(subject):
    """The key holds the stamp (the table's partition key): fanout stamps a re-read record
    the same (services/fanout/stamps.py), so only a record it had to stamp with its clock can
    be recorded twice."""
    first = entry(1)
    later = first._replace(received_at=NOW + timedelta(days=1))
    await subject.writer.record([first])
    await subject.writer.record([later])
    assert await subject.stored() == {key(first): first, key(later): later}


async def test_nothing_to_record_records_nothing(subject):
    await subject.writer.record([])
    assert await subject.stored() == {}


async def test_a_refused_event_with_text_postgres_cannot_hold_is_recorded_escaped(subject):
    raw = b'{"organization_id":"%s","id":"a\\u0000b","event":"\\udc00x"}' % str(ORG).encode()
    refused = rejected(raw, "id: \x00 \ud800", read_from=ReadFrom("t", 0, 1, 2), stamp=NOW)
    assert refused is not None
    await subject.writer.record([refused])
    assert await subject.stored() == {key(refused): refused}
    assert refused.event_id == "a\\u0000b" and refused.event == "\\udc00x"
