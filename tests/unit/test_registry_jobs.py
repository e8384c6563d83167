"""Recovery orders and job progress: the window's checks, the body's, and JobService against
an in-memory JobStore (tests/integration/test_registry_jobs_contract.py holds it to Postgres)."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from pydantic import ValidationError

from services.registry.errors import InvalidChange, NotFound
from services.registry.jobs.models import (
    QUEUED_COUNTS_FOR,
    JobRow,
    Progress,
    RecoverInput,
    TooManyJobs,
    recovery_window,
)
from services.registry.jobs.service import JobService
from services.registry.outbox import OutboxEntry
from shared.kafka import Topics
from shared.messages import RecoverRequested

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ACCOUNT, OTHER = uuid.uuid4(), uuid.uuid4()
HOOK = uuid.uuid4()
TOPICS = Topics()


class FakeJobs:
    """`JobStore` in dicts: webhooks by account, failed deliveries' creation times by
    webhook, jobs, the delivery service's progress (set by the test) and the outbox."""

    def __init__(self) -> None:
        self.webhooks: set[tuple[UUID, UUID]] = set()
        self.failed: dict[UUID, list[datetime]] = {}
        self.jobs: dict[UUID, JobRow] = {}
        self.progress: dict[UUID, Progress] = {}
        self.outbox: list[OutboxEntry] = []
        self.audited: list = []

    async def webhook_exists(self, organization_id: UUID, webhook_id: UUID) -> bool:
        return (organization_id, webhook_id) in self.webhooks

    async def count_failed(self, webhook_id: UUID, *, since: datetime, until: datetime) -> int:
        return sum(since <= at < until for at in self.failed.get(webhook_id, []))

    async def insert(
        self, row: JobRow, entries: Sequence[OutboxEntry], *, open_max: int, audit=None
    ) -> None:
        unfinished = [
            job
            for job in self.jobs.values()
            if job.organization_id == row.organization_id
            and (
                self.progress[job.id].status == "running"
                if job.id in self.progress
                else job.created_at > row.created_at - QUEUED_COUNTS_FOR
            )
        ]
        if len(unfinished) >= open_max:
            raise TooManyJobs(open_max)
        self.jobs[row.id] = row
        self.outbox.extend(entries)
        self.audited.extend([audit] if audit is not None else [])

    async def get(self, organization_id: UUID, job_id: UUID):
        row = self.jobs.get(job_id)
        if row is None or row.organization_id != organization_id:
            return None
        return row, self.progress.get(job_id)


@pytest.fixture
def store() -> FakeJobs:
    store = FakeJobs()
    store.webhooks.add((ACCOUNT, HOOK))
    store.failed[HOOK] = [NOW - timedelta(hours=h) for h in (1, 2, 3, 30)]
    return store


@pytest.fixture
def jobs(store) -> JobService:
    return JobService(store, TOPICS, lambda: NOW, open_max=2)


def window(since: str, until: str | None = None) -> RecoverInput:
    return RecoverInput.model_validate({"since": since, "until": until})


@pytest.mark.parametrize(
    ("since_h", "until_h", "field", "message"),
    [
        (1, None, None, None),  # until: now
        (2, 1, None, None),
        (0, None, "since", "must be in the past"),
        (-1, None, "since", "must be in the past"),
        (2, -1, "until", "must not be in the future"),
        (2, 2, "until", "must be later than since"),
        (1, 2, "until", "must be later than since"),
    ],
)
def test_a_recovery_window_is_in_the_past_and_not_empty(since_h, until_h, field, message):
    since = NOW - timedelta(hours=since_h)
    until = None if until_h is None else NOW - timedelta(hours=until_h)
    if field is None:
        assert recovery_window(since, until, now=NOW) == (since, until or NOW)
        return
    with pytest.raises(InvalidChange) as refused:
        recovery_window(since, until, now=NOW)
    assert (refused.value.field, refused.value.message) == (field, message)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "since"),
        ({"since": "2026-11-30"}, "since"),  # a date alone
        ({"since": "2026-11-30T10:00:00"}, "since"),  # no offset
        ({"since": "2026-02-30T10:00:00Z"}, "since"),  # no such day
        ({"since": 1764500000}, "since"),  # a number
        ({"since": "2026-11-30T10:00:00Z", "until": "yesterday"}, "until"),
        ({"since": "2026-11-30T10:00:00Z", "until": True}, "until"),
        ({"since": "2026-11-30T10:00:00Z", "from": "x"}, "from"),
    ],
)
def test_a_recover_body_takes_rfc_3339_date_times_and_names_the_field_it_refuses(body, field):
    with pytest.raises(ValidationError) as refused:
        RecoverInput.model_validate(body)
    assert [e["loc"][0] for e in refused.value.errors()] == [field]


def test_an_offset_is_read_as_the_same_instant_in_utc():
    body = window("2026-11-30T13:00:00+01:00", "2026-11-30t13:30:00.5z")
    assert body.since == datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    assert body.until == datetime(2026, 11, 30, 13, 30, 0, 500000, tzinfo=UTC)


async def test_a_recovery_is_a_queued_job_and_an_order_on_the_deliveries_topic(jobs, store):
    job = await jobs.recover(str(ACCOUNT), str(HOOK), window("2026-12-01T08:00:00Z"))
    assert (job.status, job.total, job.done, job.until) == ("queued", 3, 0, NOW)
    [(topic, key, value)] = store.outbox
    assert (topic, key) == (TOPICS.deliveries, str(HOOK).encode())
    order = RecoverRequested.model_validate(json.loads(value or b""))
    assert (order.job_id, order.webhook_id, order.organization_id) == (
        job.id,
        str(HOOK),
        str(ACCOUNT),
    )
    assert (order.since, order.until) == (NOW - timedelta(hours=4), NOW)


async def test_another_accounts_webhook_and_job_are_not_found(jobs):
    with pytest.raises(NotFound):
        await jobs.recover(str(OTHER), str(HOOK), window("2026-12-01T08:00:00Z"))
    job = await jobs.recover(str(ACCOUNT), str(HOOK), window("2026-12-01T08:00:00Z"))
    with pytest.raises(NotFound):
        await jobs.get(str(OTHER), job.id)
    with pytest.raises(NotFound):
        await jobs.get(str(ACCOUNT), "not-a-uuid")


async def test_a_job_shows_the_delivery_services_progress_and_its_exact_total_at_the_end(
    jobs, store
):
    job = await jobs.recover(str(ACCOUNT), str(HOOK), window("2026-12-01T08:00:00Z"))
    later = NOW + timedelta(seconds=5)
    store.progress[UUID(job.id)] = Progress("running", 2, 1, False, None, later)
    seen = await jobs.get(str(ACCOUNT), job.id)
    assert (seen.status, seen.total, seen.done, seen.updated_at) == ("running", 3, 1, later)
    store.progress[UUID(job.id)] = Progress("done", 2, 2, True, None, later)
    seen = await jobs.get(str(ACCOUNT), job.id)
    assert (seen.status, seen.total, seen.done) == ("done", 2, 2)  # one was sent meanwhile


async def test_an_account_may_have_only_so_many_jobs_queued_or_running(jobs, store):
    body = window("2026-12-01T08:00:00Z")
    first = await jobs.recover(str(ACCOUNT), str(HOOK), body)
    await jobs.recover(str(ACCOUNT), str(HOOK), body)
    with pytest.raises(TooManyJobs):
        await jobs.recover(str(ACCOUNT), str(HOOK), body)
    store.progress[UUID(first.id)] = Progress("done", 3, 3, True, None, NOW)
    await jobs.recover(str(ACCOUNT), str(HOOK), body)


async def test_a_job_queued_for_over_an_hour_no_longer_counts_against_the_account(jobs, store):
    body = window("2026-12-01T08:00:00Z")
    await jobs.recover(str(ACCOUNT), str(HOOK), body)
    lost = await jobs.recover(str(ACCOUNT), str(HOOK), body)  # its order never arrived
    with pytest.raises(TooManyJobs):
        await jobs.recover(str(ACCOUNT), str(HOOK), body)
    row = store.jobs[UUID(lost.id)]
    store.jobs[row.id] = dataclasses.replace(row, created_at=NOW - timedelta(minutes=61))
    await jobs.recover(str(ACCOUNT), str(HOOK), body)
