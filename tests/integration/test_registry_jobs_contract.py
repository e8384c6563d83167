"""The JobStore contract (services/registry/jobs/service.py), run against the in-memory fake
(tests/unit/test_registry_jobs.py) and Postgres, so the fake cannot drift."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg
import pytest

from services.registry.jobs.models import JobRow, Progress, TooManyJobs
from services.registry.jobs.repository import PostgresJobs
from services.registry.jobs.service import JobStore
from tests.unit.test_registry_jobs import FakeJobs

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@dataclass
class Jobs:
    store: JobStore
    webhook: Callable[[UUID], Awaitable[UUID]]  # a webhook of the account
    failed: Callable[[UUID, datetime], Awaitable[None]]  # a failed delivery created then
    progress: Callable[[UUID, Progress], Awaitable[None]]  # the delivery service's row
    outbox: Callable[[], Awaitable[list[tuple[str, bytes, bytes | None]]]]


def fake_jobs() -> Jobs:
    fake = FakeJobs()

    async def webhook(organization_id: UUID) -> UUID:
        webhook_id = uuid.uuid4()
        fake.webhooks.add((organization_id, webhook_id))
        return webhook_id

    async def failed(webhook_id: UUID, at: datetime) -> None:
        fake.failed.setdefault(webhook_id, []).append(at)

    async def progress(job_id: UUID, found: Progress) -> None:
        fake.progress[job_id] = found

    async def outbox() -> list:
        return list(fake.outbox)

    return Jobs(fake, webhook, failed, progress, outbox)


def postgres_jobs(pool: asyncpg.Pool) -> Jobs:
    async def webhook(organization_id: UUID) -> UUID:
        webhook_id = uuid.uuid4()
        await pool.execute(
            "INSERT INTO registry.accounts (id, name) VALUES ($1, 'a') ON CONFLICT DO NOTHING",
            organization_id,
        )
        await pool.execute(
            "INSERT INTO registry.webhooks (id, organization_id, url, secret_ciphertext, events,"
            " created_at, updated_at) VALUES ($1, $2, 'https://h.example.com', 'k:x',"
            " '{participant.joined}', now(), now())",
            webhook_id,
            organization_id,
        )
        return webhook_id

    async def failed(webhook_id: UUID, at: datetime) -> None:
        await pool.execute(
            "INSERT INTO delivery.deliveries (id, webhook_id, organization_id, event_id, event,"
            " payload, status, created_at, updated_at)"
            " VALUES ($1, $2, $2, $3, 'participant.joined', '{}', 'failed', $4, $4)",
            uuid.uuid4(),
            webhook_id,
            str(uuid.uuid4()),
            at,
        )

    async def progress(job_id: UUID, found: Progress) -> None:
        await pool.execute(
            "INSERT INTO delivery.recoveries (job_id, webhook_id, organization_id, since, until,"
            " status, marked, done, exhausted, error, created_at, updated_at)"
            " VALUES ($1, $1, $1, $2, $2, $3, $4, $5, $6, $7, $2, $8)",
            job_id,
            T0,
            found.status,
            found.marked,
            found.done,
            found.exhausted,
            found.error,
            found.updated_at,
        )

    async def outbox() -> list:
        records = await pool.fetch("SELECT topic, key, value FROM registry.outbox ORDER BY id")
        return [(r["topic"], r["key"], r["value"]) for r in records]

    return Jobs(PostgresJobs(pool), webhook, failed, progress, outbox)


@pytest.fixture(params=["fake", "real"])
def jobs(request: pytest.FixtureRequest) -> Jobs:
    return (
        fake_jobs() if request.param == "fake" else postgres_jobs(request.getfixturevalue("pool"))
    )


def job_row(organization_id: UUID, webhook_id: UUID) -> JobRow:
    return JobRow(
        id=uuid.uuid4(),
        organization_id=organization_id,
        kind="recover",
        webhook_id=webhook_id,
        since=T0 - timedelta(hours=1),
        until=T0,
        total=3,
        created_at=T0,
    )


ENTRY = ("roomhooks.deliveries", b"key", b'{"type":"recover"}')


async def test_a_webhook_exists_only_inside_its_account(jobs):
    account = uuid.uuid4()
    webhook = await jobs.webhook(account)
    assert await jobs.store.webhook_exists(account, webhook)
    assert not await jobs.store.webhook_exists(uuid.uuid4(), webhook)
    assert not await jobs.store.webhook_exists(account, uuid.uuid4())


async def test_failed_deliveries_are_counted_in_the_window_only(jobs):
    webhook = await jobs.webhook(uuid.uuid4())
    for minutes in (-61, -60, -30, 0, 5):
        await jobs.failed(webhook, T0 + timedelta(minutes=minutes))
    await jobs.failed(await jobs.webhook(uuid.uuid4()), T0 - timedelta(minutes=30))
    counted = await jobs.store.count_failed(webhook, since=T0 - timedelta(hours=1), until=T0)
    assert counted == 2  # since is in the window, until is not


async def test_a_job_is_stored_with_its_order_and_read_with_its_progress_in_its_account(jobs):
    account = uuid.uuid4()
    row = job_row(account, await jobs.webhook(account))
    await jobs.store.insert(row, [ENTRY], open_max=5)
    assert await jobs.outbox() == [ENTRY]
    assert await jobs.store.get(account, row.id) == (row, None)
    assert await jobs.store.get(uuid.uuid4(), row.id) is None
    progress = Progress("running", 2, 1, False, None, T0 + timedelta(seconds=3))
    await jobs.progress(row.id, progress)
    assert await jobs.store.get(account, row.id) == (row, progress)


async def test_an_account_with_open_max_unfinished_jobs_stores_no_more(jobs):
    account = uuid.uuid4()
    webhook = await jobs.webhook(account)
    first, second = job_row(account, webhook), job_row(account, webhook)
    await jobs.store.insert(first, [ENTRY], open_max=2)
    await jobs.store.insert(second, [ENTRY], open_max=2)
    with pytest.raises(TooManyJobs):
        await jobs.store.insert(job_row(account, webhook), [ENTRY], open_max=2)
    assert len(await jobs.outbox()) == 2
    await jobs.progress(first.id, Progress("done", 3, 3, True, None, T0))
    await jobs.store.insert(job_row(account, webhook), [ENTRY], open_max=2)
    other = uuid.uuid4()  # another account's jobs do not count
    await jobs.store.insert(job_row(other, await jobs.webhook(other)), [ENTRY], open_max=2)


async def test_a_job_queued_for_over_an_hour_no_longer_counts(jobs):
    account = uuid.uuid4()
    webhook = await jobs.webhook(account)
    lost = job_row(account, webhook)
    await jobs.store.insert(lost, [ENTRY], open_max=1)
    with pytest.raises(TooManyJobs):
        await jobs.store.insert(job_row(account, webhook), [ENTRY], open_max=1)
    later = dataclasses.replace(job_row(account, webhook), created_at=T0 + timedelta(minutes=61))
    await jobs.store.insert(later, [ENTRY], open_max=1)
