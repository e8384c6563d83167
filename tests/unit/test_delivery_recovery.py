"""Recovery jobs on the fakes of services/delivery/dependencies.py: a job makes the failed
deliveries of its window due again, a bounded batch at a time, counts those attempted, and
ends; tests/integration/test_delivery_recovery.py runs it on Postgres, the broker and a real
receiver."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.delivery.policy import RecoveryStep, recovery_step
from services.delivery.rows import Target
from shared.messages import DeliveryRequested, RecoverRequested, delivery_id_for
from tests.support.delivery_fakes import FakeDelivery, fake_delivery

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
URL = "http://hooks.example.com/in"
WEBHOOK = uuid.UUID(int=7)
ORG = uuid.UUID(int=1)


def request(n: int) -> DeliveryRequested:
    return DeliveryRequested(
        delivery_id=delivery_id_for(str(WEBHOOK), f"e{n}"),
        webhook_id=str(WEBHOOK),
        organization_id=str(ORG),
        event_id=f"e{n}",
        event="participant.joined",
        body="{}",
        created_at=NOW + timedelta(minutes=n),
    )


def order(since_minute: int, until_minute: int, job_id: uuid.UUID | None = None):
    return RecoverRequested(
        job_id=str(job_id or uuid.uuid4()),
        webhook_id=str(WEBHOOK),
        organization_id=str(ORG),
        since=NOW + timedelta(minutes=since_minute),
        until=NOW + timedelta(minutes=until_minute),
        requested_at=NOW,
    )


async def failed_world(count: int, **settings) -> tuple[FakeDelivery, list[uuid.UUID]]:
    """`count` deliveries (created a minute apart) that failed for good: the receiver was down."""
    w = fake_delivery(NOW, retry_schedule=[], **settings)
    w.targets.put(WEBHOOK, Target(URL, "s3cret", True, None))
    w.poster.answer(URL, 503)
    jobs = await w.service.accept([request(n) for n in range(count)])
    for job in jobs:
        await w.service.attempt(job)
    assert {row.status for row in w.store.rows.values()} == {"failed"}
    w.poster.answer(URL, 200)  # the receiver is back
    w.poster.posts.clear()
    return w, [job.id for job in jobs]


async def recover(w: FakeDelivery, *orders: RecoverRequested) -> None:
    await w.service.accept(list(orders))
    assert w.service.wake_upkeep.is_set()


def progress(w: FakeDelivery, job_id: str) -> tuple[str, int, int]:
    found = w.store.recoveries[uuid.UUID(job_id)]
    return found.status, found.recovery.marked, found.recovery.done


@pytest.mark.parametrize(
    ("exists", "exhausted", "outstanding", "step"),
    [
        (False, False, 0, RecoveryStep.FAIL),
        (True, False, 0, RecoveryStep.MARK),
        (True, False, 5, RecoveryStep.MARK),  # half a batch (10) waits: mark the next
        (True, False, 6, RecoveryStep.WAIT),
        (True, True, 1, RecoveryStep.WAIT),
        (True, True, 0, RecoveryStep.FINISH),
    ],
)
def test_a_job_marks_a_batch_only_once_half_a_batch_is_left_and_ends_when_all_are_attempted(
    exists, exhausted, outstanding, step
):
    assert (
        recovery_step(webhook_exists=exists, exhausted=exhausted, outstanding=outstanding, batch=10)
        is step
    )


async def test_a_recovery_sends_every_failed_delivery_of_its_window_again_and_ends():
    w, ids = await failed_world(6)
    job = order(1, 5)  # minutes 1 to 4
    await recover(w, job)
    await w.upkeep.run_once()
    claimed = await w.attempt_due()
    assert claimed == ids[1:5]  # in order of creation; the same delivery ids
    assert [p.headers["webhook-id"] for p in w.poster.posts] == [str(d) for d in ids[1:5]]
    assert [p.headers["X-Webhook-Attempt"] for p in w.poster.posts] == ["2"] * 4
    assert progress(w, job.job_id) == ("running", 4, 0)
    await w.upkeep.run_once()
    assert progress(w, job.job_id) == ("done", 4, 4)
    assert [w.store.rows[d].status for d in ids] == ["failed", *["success"] * 4, "failed"]


async def test_a_job_ordered_twice_runs_once():
    w, _ = await failed_world(2)
    job = order(0, 10)
    await recover(w, job, job)
    await recover(w, job)
    assert list(w.store.recoveries) == [uuid.UUID(job.job_id)]


async def test_a_large_window_goes_a_batch_at_a_time_as_its_deliveries_are_attempted():
    w, ids = await failed_world(10, upkeep_batch=4)
    job = order(0, 60)
    await recover(w, job)
    await w.upkeep.run_once()
    assert progress(w, job.job_id) == ("running", 4, 0)
    await w.upkeep.run_once()  # nothing attempted yet: no new batch
    assert progress(w, job.job_id) == ("running", 4, 0)
    sent = await w.attempt_due()
    while progress(w, job.job_id)[0] == "running":
        await w.upkeep.run_once()
        sent += await w.attempt_due()
    assert sent == ids and progress(w, job.job_id) == ("done", 10, 10)


async def test_a_recovery_of_a_disabled_webhook_holds_its_batch_until_enabled():
    w, ids = await failed_world(3)
    target = w.targets.targets[WEBHOOK]
    w.targets.put(WEBHOOK, dataclasses.replace(target, enabled=False))
    job = order(0, 60)
    await recover(w, job)
    await w.upkeep.run_once()
    await w.attempt_due()
    assert w.poster.posts == []
    assert {(w.store.rows[d].status, w.store.rows[d].next_attempt_at) for d in ids} == {
        ("pending", None)
    }
    await w.upkeep.run_once()
    assert progress(w, job.job_id) == ("running", 3, 0)
    w.targets.put(WEBHOOK, target)
    await w.upkeep.run_once()
    assert await w.attempt_due() == ids
    await w.upkeep.run_once()
    assert progress(w, job.job_id) == ("done", 3, 3)


async def test_a_recovery_of_a_deleted_webhook_fails_and_sends_nothing():
    w, _ = await failed_world(2)
    w.targets.targets.clear()
    job = order(0, 60)
    await recover(w, job)
    await w.upkeep.run_once()
    found = w.store.recoveries[uuid.UUID(job.job_id)]
    assert (found.status, found.error) == ("failed", "webhook deleted")
    assert await w.attempt_due() == []


async def test_overlapping_recoveries_never_make_one_delivery_due_twice_at_once():
    w, ids = await failed_world(4)
    first, second = order(0, 3), order(1, 60)
    await recover(w, first, second)
    await w.upkeep.run_once()
    assert progress(w, first.job_id)[1] + progress(w, second.job_id)[1] == 4
    assert sorted(await w.attempt_due()) == sorted(ids)
    assert len(w.poster.posts) == 4  # each delivery sent once
    await w.upkeep.run_once()
    assert progress(w, first.job_id)[0] == progress(w, second.job_id)[0] == "done"


async def test_a_window_without_failed_deliveries_ends_at_once_with_nothing_sent():
    w, _ = await failed_world(2)
    job = order(30, 60)
    await recover(w, job)
    await w.upkeep.run_once()
    assert progress(w, job.job_id) == ("done", 0, 0)
    assert await w.attempt_due() == []
