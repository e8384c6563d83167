"""A disabled webhook holds its deliveries (pending, out of the claims) and enabling it
resumes them in order of creation; a deleted one fails them. On the fakes of
services/delivery/dependencies.py (tests/integration/test_delivery_pause.py runs the same on
Postgres, the broker and a real receiver)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.delivery.policy import HeldFate, held_fate
from services.delivery.rows import Target
from shared.messages import DeliveryRequested, RedeliverRequested, delivery_id_for
from tests.support.delivery_fakes import FakeDelivery, fake_delivery

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
URL = "http://hooks.example.com/in"
WEBHOOK = uuid.UUID(int=7)
ORG = uuid.UUID(int=1)


def request(n: int, *, webhook: uuid.UUID = WEBHOOK) -> DeliveryRequested:
    event_id = f"e{n}"
    return DeliveryRequested(
        delivery_id=delivery_id_for(str(webhook), event_id),
        webhook_id=str(webhook),
        organization_id=str(ORG),
        event_id=event_id,
        event="participant.joined",
        body=f'{{"id":"{event_id}"}}',
        created_at=NOW + timedelta(seconds=n),  # created in the order of n
    )


def world(*, enabled: bool = True, **settings) -> FakeDelivery:
    w = fake_delivery(NOW, **settings)
    w.targets.put(WEBHOOK, Target(URL, "s3cret", enabled, None))
    w.poster.answer(URL, 200)
    return w


def enable(w: FakeDelivery, enabled: bool = True) -> None:
    target = w.targets.targets[WEBHOOK]
    w.targets.put(WEBHOOK, dataclasses.replace(target, enabled=enabled))


async def attempt_new(w: FakeDelivery, *numbers: int) -> list[uuid.UUID]:
    """Accept one request per number (listed in any order) and attempt each."""
    jobs = await w.service.accept([request(n) for n in numbers])
    for job in jobs:
        await w.service.attempt(job)
    return [job.id for job in jobs]


@pytest.mark.parametrize(
    ("exists", "enabled", "fate"),
    [
        (True, False, HeldFate.KEEP),
        (True, True, HeldFate.RESUME),
        (False, False, HeldFate.FAIL),
    ],
)
def test_held_deliveries_wait_while_disabled_resume_when_enabled_and_fail_when_deleted(
    exists, enabled, fate
):
    assert held_fate(exists=exists, enabled=enabled) is fate


async def test_a_delivery_of_a_disabled_webhook_is_held_pending_without_a_request():
    w = world(enabled=False)
    [delivery_id] = await attempt_new(w, 1)
    row = w.store.rows[delivery_id]
    assert (row.status, row.next_attempt_at, row.lease_until) == ("pending", None, None)
    assert w.poster.posts == [] and w.attempts.rows == []
    w.clock.advance(3600)
    assert await w.attempt_due() == []  # out of every claim


async def test_held_deliveries_stay_held_while_the_webhook_is_disabled():
    w = world(enabled=False)
    await attempt_new(w, 1, 2)
    assert await w.upkeep.run_once() is False
    w.clock.advance(60)
    assert await w.attempt_due() == []


async def test_enabling_resumes_held_deliveries_in_order_of_creation():
    w = world(enabled=False)
    held = await attempt_new(w, 3, 1, 4, 2)  # arrived out of order
    enable(w)
    await w.upkeep.run_once()
    assert w.service.wake_scheduler.is_set()
    claimed = await w.attempt_due()
    by_creation = [uuid.UUID(request(n).delivery_id) for n in (1, 2, 3, 4)]
    assert claimed == by_creation and sorted(held) == sorted(by_creation)
    assert [post.headers["webhook-id"] for post in w.poster.posts] == list(map(str, by_creation))
    assert {w.store.rows[d].status for d in held} == {"success"}


async def test_a_retrying_delivery_is_held_when_due_and_resumed_with_its_next_attempt():
    w = world()
    w.poster.answer(URL, 500)
    [delivery_id] = await attempt_new(w, 1)
    enable(w, False)
    w.clock.advance(2)
    await w.attempt_due()
    row = w.store.rows[delivery_id]
    assert (row.status, row.next_attempt_at, len(row.attempts)) == ("pending", None, 1)
    enable(w)
    w.poster.answer(URL, 200)
    await w.upkeep.run_once()
    assert await w.attempt_due() == [delivery_id]
    assert [post.headers["X-Webhook-Attempt"] for post in w.poster.posts] == ["1", "2"]
    assert row.status == "success"


async def test_a_410_fails_its_delivery_and_holds_the_next_until_the_webhook_is_enabled():
    w = world()
    w.poster.answer(URL, 410)
    [gone] = await attempt_new(w, 1)
    assert w.store.rows[gone].status == "failed" and len(w.disabled) == 1
    [later] = await attempt_new(w, 2)
    assert w.store.rows[later].status == "pending" and len(w.poster.posts) == 1
    enable(w)  # the registry's record of the webhook enabled again
    w.poster.answer(URL, 200)
    await w.upkeep.run_once()
    assert await w.attempt_due() == [later]
    assert w.store.rows[later].status == "success"


async def test_held_deliveries_of_a_deleted_webhook_end_as_failed():
    w = world(enabled=False)
    held = await attempt_new(w, 1, 2)
    w.targets.targets.clear()
    await w.upkeep.run_once()
    assert {(w.store.rows[d].status, w.store.rows[d].last_error) for d in held} == {
        ("failed", "webhook deleted")
    }


async def test_resuming_goes_a_batch_at_a_time_and_says_when_more_is_left():
    w = world(enabled=False, upkeep_batch=2)
    await attempt_new(w, 1, 2, 3, 4, 5)
    enable(w)
    assert await w.upkeep.run_once() is True  # a full batch: run again at once
    assert len(await w.attempt_due()) == 2
    assert await w.upkeep.run_once() is True
    assert await w.upkeep.run_once() is False  # the last one
    assert len(await w.attempt_due()) == 3


async def test_a_redelivery_of_a_held_delivery_is_held_again_while_disabled():
    w = world(enabled=False)
    [delivery_id] = await attempt_new(w, 1)
    order = RedeliverRequested(
        delivery_id=str(delivery_id),
        webhook_id=str(WEBHOOK),
        organization_id=str(ORG),
        requested_at=NOW,
    )
    await w.service.accept([order])
    assert await w.attempt_due() == [delivery_id]
    row = w.store.rows[delivery_id]
    assert (row.status, row.next_attempt_at) == ("pending", None)
    assert w.poster.posts == []
