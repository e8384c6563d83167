"""EventLog's contract (services/registry/events/service.py), on the fake and on Postgres alike:
rows recorded as fanout records them, statuses as the delivery service and the runner do."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from services.fanout.event_log import LoggedEvent
from services.fanout.repository import PostgresEventLog as FanoutEventLog
from services.registry.events.models import EventFilters, EventRow
from services.registry.events.repository import PostgresEventLog
from tests.support.registry_fakes import FakeEventLog, event_row

pytestmark = pytest.mark.integration

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@dataclass
class Subject:
    repo: Any
    pool: asyncpg.Pool | None = None

    async def record(self, organization_id: UUID, *rows: EventRow) -> None:
        """As fanout records them."""
        for row in rows:
            if self.pool is None:
                self.repo.record(organization_id, row)
                continue
            fields = {**row.__dict__, "organization_id": organization_id}
            fields["webhook_ids"] = tuple(row.webhook_ids)
            fields["workflow_ids"] = tuple(row.workflow_ids)
            await FanoutEventLog(self.pool).record([LoggedEvent(**fields)])

    async def record_status(
        self,
        kind: str,
        organization_id: UUID,
        row_id: UUID,
        status: str,
        created_at: datetime = T0,
    ):
        """A delivery ("delivery") or an execution ("run"), as its service records it: created
        at its event's stamp (the received_at of its row in the event log)."""
        if self.pool is None:
            self.repo.record_status(kind, organization_id, row_id, status, created_at)
            return
        table = {"delivery": "delivery.deliveries", "run": "workflow.executions"}[kind]
        extra = (
            ("webhook_id, payload", "'{}'") if kind == "delivery" else ("workflow_id, version", "1")
        )
        await self.pool.execute(
            f"INSERT INTO {table} (id, organization_id, {extra[0]}, event_id, event, status,"
            f" created_at, updated_at) VALUES ($1, $2, $3, {extra[1]}, 'evt', 'participant.joined',"
            " $4, $5, now())",
            row_id,
            organization_id,
            uuid.uuid4(),
            status,
            created_at,
        )


@pytest.fixture(params=["fake", "postgres"])
def subject(request: pytest.FixtureRequest) -> Subject:
    if request.param == "fake":
        return Subject(FakeEventLog())
    pool = request.getfixturevalue("pool")
    return Subject(PostgresEventLog(pool), pool)


def at(seconds: int, org: UUID, **fields: Any) -> EventRow:
    return event_row(org, received_at=T0 + timedelta(seconds=seconds), **fields)


def listed(row: EventRow) -> EventRow:
    return replace(row, payload=None)  # pages do not read bodies


async def test_pages_hold_the_accounts_own_events_newest_first_without_bodies(subject):
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    rows = [at(n, mine) for n in range(4)]
    await subject.record(mine, *rows)
    await subject.record(theirs, at(9, theirs))
    page = await subject.repo.page(mine, EventFilters(), limit=10, after=None)
    assert page == [listed(r) for r in rows[::-1]]
    after = (rows[2].received_at, rows[2].id)
    page = await subject.repo.page(mine, EventFilters(), limit=1, after=after)
    assert page == [listed(rows[1])]


async def test_each_filter_narrows_the_page_and_they_combine(subject):
    org = uuid.uuid4()
    joined = at(1, org, event="participant.joined", room_id="r1")
    elsewhere = at(2, org, event="participant.joined", room_id="r2")
    started = at(3, org, event="session.started", room_id="r1")
    refused = at(4, org, event="session.started", room_id="r1", status="rejected", reason="x")
    await subject.record(org, joined, elsewhere, started, refused)

    async def page(**filters: Any) -> list[EventRow]:
        return await subject.repo.page(org, EventFilters(**filters), limit=10, after=None)

    assert await page(event="participant.joined") == [listed(elsewhere), listed(joined)]
    assert await page(room_id="r1") == [listed(refused), listed(started), listed(joined)]
    assert await page(status="rejected") == [listed(refused)]
    assert await page(status="accepted", room_id="r1", event="session.started") == [listed(started)]
    assert await page(since=T0 + timedelta(seconds=2)) == [
        listed(refused),
        listed(started),
        listed(elsewhere),
    ]
    assert await page(until=T0 + timedelta(seconds=2)) == [listed(joined)]
    window = {"since": T0 + timedelta(seconds=2), "until": T0 + timedelta(seconds=4)}
    assert await page(**window, room_id="r1") == [listed(started)]


async def test_an_accepted_event_is_found_by_its_id_in_its_account_with_its_body(subject):
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    row = at(1, mine, event_id="evt-a", webhook_ids=[uuid.uuid4()], workflow_ids=[uuid.uuid4()])
    await subject.record(mine, row)
    assert await subject.repo.find(mine, "evt-a") == row
    assert await subject.repo.find(theirs, "evt-a") is None
    assert await subject.repo.find(mine, "evt-b") is None


async def test_a_rejected_event_is_found_by_the_id_it_carried_and_an_accepted_one_first(subject):
    org = uuid.uuid4()
    older = at(1, org, event_id="evt-r", status="rejected", reason="first")
    newer = at(2, org, event_id="evt-r", status="rejected", reason="second")
    await subject.record(org, older, newer)
    assert await subject.repo.find(org, "evt-r") == newer
    accepted = at(0, org, event_id="evt-r")
    await subject.record(org, accepted)
    assert await subject.repo.find(org, "evt-r") == accepted


async def test_statuses_are_those_of_the_accounts_own_deliveries_and_executions(subject):
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    delivered, foreign, missing = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await subject.record_status("delivery", mine, delivered, "failed")
    await subject.record_status("delivery", theirs, foreign, "success")
    found = await subject.repo.delivery_statuses(
        mine, [delivered, foreign, missing], received_at=T0
    )
    assert found == {delivered: "failed"}
    ran = uuid.uuid4()
    await subject.record_status("run", mine, ran, "timeout")
    assert await subject.repo.execution_statuses(mine, [ran, missing], received_at=T0) == {
        ran: "timeout"
    }
    assert await subject.repo.execution_statuses(theirs, [ran], received_at=T0) == {}


@pytest.mark.parametrize("kind", ["delivery", "run"])
async def test_statuses_are_found_whether_or_not_created_at_is_the_events_stamp(subject, kind):
    """Fanout stamps an event's deliveries and executions with its received_at; before it did,
    created_at was a few microseconds earlier; anything else is found by id all the same."""
    org = uuid.uuid4()
    stamped = {
        uuid.uuid4(): T0,
        uuid.uuid4(): T0 - timedelta(microseconds=40),  # recorded before fanout stamped alike
        uuid.uuid4(): T0 - timedelta(days=1),
        uuid.uuid4(): T0 + timedelta(seconds=1),
    }
    for row_id, created_at in stamped.items():
        await subject.record_status(kind, org, row_id, "success", created_at)
    statuses = {"delivery": subject.repo.delivery_statuses, "run": subject.repo.execution_statuses}
    found = await statuses[kind](org, [*stamped, uuid.uuid4()], received_at=T0)
    assert found == {row_id: "success" for row_id in stamped}
