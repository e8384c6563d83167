"""DeliveryService on the fakes of its dependencies: what it stores, sends, records and
schedules (no broker, no database, no socket)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from prometheus_client import CollectorRegistry

from services.delivery.consumer import RequestConsumer
from services.delivery.rows import Job, Target
from services.delivery.service import DeliveryService
from services.delivery.settings import DEFAULT_RETRY_SCHEDULE
from shared.failures import is_content_error
from shared.messages import DeliveryRequested, DisableWebhook, RedeliverRequested, delivery_id_for
from shared.signing import verify_hex, verify_standard
from tests.support.delivery_fakes import (
    FakeAttemptLog,
    FakeClock,
    FakeDeliveryStore,
    FakePoster,
    FakeTargets,
    fake_delivery,
)
from tests.support.polling import eventually

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SECRET = "s3cret"
URL = "http://hooks.example.com/in"


@dataclass
class World:
    service: DeliveryService
    store: FakeDeliveryStore
    attempts: FakeAttemptLog
    poster: FakePoster
    targets: FakeTargets
    clock: FakeClock
    metrics: CollectorRegistry
    webhook_id: uuid.UUID = field(default_factory=uuid.uuid4)
    organization_id: uuid.UUID = field(default_factory=uuid.uuid4)
    disabled: list[DisableWebhook] = field(default_factory=list)

    def request(self, event_id: str = "e1", body: str = '{"id":"e1"}') -> DeliveryRequested:
        return DeliveryRequested(
            delivery_id=delivery_id_for(str(self.webhook_id), event_id),
            webhook_id=str(self.webhook_id),
            organization_id=str(self.organization_id),
            event_id=event_id,
            event="participant.joined",
            body=body,
            created_at=NOW,
        )

    def target(self, **fields: object) -> None:
        values = {"url": URL, "secret": SECRET, "enabled": True, "retry_schedule": None}
        self.targets.put(self.webhook_id, Target(**{**values, **fields}))  # type: ignore[arg-type]

    async def accepted(self, event_id: str = "e1") -> Job:
        [job] = await self.service.accept([self.request(event_id)])
        return job

    def sample(self, name: str, **labels: str) -> float:
        return self.metrics.get_sample_value(name, labels) or 0.0


def world(**settings: object) -> World:
    metrics = CollectorRegistry()
    fake = fake_delivery(NOW, metrics=metrics, **settings)
    store, attempts, poster, targets, clock = (
        fake.store,
        fake.attempts,
        fake.poster,
        fake.targets,
        fake.clock,
    )
    service, disabled = fake.service, fake.disabled
    found = World(service, store, attempts, poster, targets, clock, metrics, disabled=disabled)
    found.target()
    return found


async def test_an_accepted_request_is_stored_leased_to_us_and_returned_as_a_job():
    w = world()
    job = await w.accepted()
    assert job.id == uuid.UUID(w.request().delivery_id) and job.attempts == 0
    assert job.lease_until == NOW + timedelta(seconds=10)
    assert w.store.rows[job.id].status == "pending"
    assert w.sample("roomhooks_deliveries_accepted_total") == 1


async def test_a_request_accepted_again_stores_nothing_new():
    w = world()
    await w.accepted()
    assert await w.service.accept([w.request()]) == []
    assert len(w.store.rows) == 1


async def test_a_batch_the_store_refuses_for_its_content_raises_that_error_and_stores_nothing():
    w = world()
    bad = DeliveryRequested.model_construct(**{**w.request("e2").model_dump(), "body": "a\x00"})
    with pytest.raises(Exception) as refused:
        await w.service.accept([w.request(), bad])
    assert is_content_error(refused.value)
    assert w.store.rows == {}


def request_consumer(w: World, kafka: object) -> RequestConsumer:
    """The request consumer of `w`'s service on `kafka` (no producer: nothing dead-lettered)."""
    return RequestConsumer(
        kafka,  # type: ignore[arg-type]
        w.service,
        w.service._lanes,
        producer=None,  # type: ignore[arg-type]
        dlq_topic="dlq",
        poison=None,  # type: ignore[arg-type]
        stopping=asyncio.Event(),
        retry_limit=3,
        fetch_stall_s=60,
    )


async def test_the_request_consumer_sets_aside_only_the_request_the_store_refuses():
    w = world()
    requests = [w.request(f"e{n}") for n in range(5)]
    requests[3] = DeliveryRequested.model_construct(
        **{**requests[3].model_dump(), "event_id": "bad\x00"}
    )
    consumer = request_consumer(w, None)  # store() reads nothing from Kafka
    parsed = [(request, f"tp{n}", f"record{n}") for n, request in enumerate(requests)]
    jobs, refused = await consumer.store(parsed)  # type: ignore[arg-type]
    assert sorted(job.event_id for job in jobs) == ["e0", "e1", "e2", "e4"]
    [(tp, record, reason, kind)] = refused
    assert (tp, record, kind) == ("tp3", "record3", "unstorable_request")
    assert reason.startswith("delivery request not storable: CharacterNotInRepertoireError")


class CommitWatch:
    """The request consumer's Kafka side: one fetched batch; its commit records whether an
    attempt had been sent by then (a commit is a round trip the attempts need not wait for)."""

    def __init__(self, records: list[bytes], poster: FakePoster) -> None:
        self._batch = {
            TopicPartition("deliveries", 0): [
                ConsumerRecord("deliveries", 0, n, 0, 0, None, value, None, 0, len(value), [])
                for n, value in enumerate(records)
            ]
        }
        self._poster = poster
        self.committed: list[tuple[dict[TopicPartition, int], int]] = []

    async def getmany(self, timeout_ms: int) -> dict[TopicPartition, list[ConsumerRecord]]:
        batch, self._batch = self._batch, {}
        return batch

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        waited = 0  # long enough for an attempt under way to be sent
        while not self._poster.posts and waited < 200:
            await asyncio.sleep(0.01)
            waited += 1
        self.committed.append((offsets, len(self._poster.posts)))


async def test_the_attempts_of_a_stored_batch_start_before_its_offsets_are_committed():
    w = world()
    w.poster.answer(URL, 200)
    kafka = CommitWatch([w.request(f"e{n}").model_dump_json().encode() for n in range(3)], w.poster)
    consumer = request_consumer(w, kafka)  # getmany and commit: all a clean batch needs
    await consumer.consume_batch()
    [(offsets, posted_by_then)] = kafka.committed
    assert offsets == {TopicPartition("deliveries", 0): 3}
    assert posted_by_then >= 1

    async def all_sent() -> bool:
        return len(w.poster.posts) == 3

    await eventually(all_sent)


async def test_a_redelivery_makes_a_finished_delivery_due_now_and_wakes_the_scheduler():
    w = world()
    job = await w.accepted()
    await w.store.stop([job], reason="webhook disabled", now=NOW)
    w.clock.advance(60)
    order = RedeliverRequested(
        delivery_id=str(job.id),
        webhook_id=str(w.webhook_id),
        organization_id=str(w.organization_id),
        requested_at=w.clock.now,
    )
    assert await w.service.accept([order]) == []
    assert w.service.wake_scheduler.is_set()
    row = w.store.rows[job.id]
    assert (row.status, row.next_attempt_at) == ("pending", w.clock.now)


async def test_a_successful_attempt_is_signed_sent_once_and_recorded_as_success():
    w = world()
    w.poster.answer(URL, 200)
    job = await w.accepted()
    await w.service.attempt(job)
    [post] = w.poster.posts
    assert post.body == b'{"id":"e1"}'
    assert post.headers["webhook-id"] == str(job.id)
    assert post.headers["X-Webhook-Attempt"] == "1"
    assert verify_hex(SECRET, post.body, post.headers["X-Webhook-Signature"])
    assert verify_standard(SECRET, post.body, post.headers, now=int(NOW.timestamp()))
    [row] = w.attempts.rows
    assert (row.attempt, row.status, row.status_code, row.next_attempt_at) == (
        1,
        "success",
        200,
        None,
    )
    assert w.sample("roomhooks_deliveries_finished_total", status="success") == 1


async def test_a_failed_attempt_is_due_again_after_the_first_step_of_the_schedule():
    w = world()
    w.poster.answer(URL, 500)
    await w.service.attempt(await w.accepted())
    [row] = w.attempts.rows
    assert (row.status, row.status_code, row.error) == (
        "pending",
        500,
        "HTTP 500 Internal Server Error",
    )
    assert row.next_attempt_at is not None
    assert NOW + timedelta(seconds=0.8) <= row.next_attempt_at <= NOW + timedelta(seconds=1.2)


async def test_the_webhooks_own_schedule_replaces_the_default():
    w = world()
    w.target(retry_schedule=(300.0,))
    w.poster.answer(URL, 503)
    await w.service.attempt(await w.accepted())
    [row] = w.attempts.rows
    assert row.next_attempt_at is not None
    assert row.next_attempt_at >= NOW + timedelta(seconds=240)


async def test_a_retry_after_longer_than_the_step_is_honoured():
    w = world()
    w.poster.answer(URL, 429, headers={"Retry-After": "120"})
    await w.service.attempt(await w.accepted())
    [row] = w.attempts.rows
    assert row.next_attempt_at is not None
    assert NOW + timedelta(seconds=120) <= row.next_attempt_at <= NOW + timedelta(seconds=144)


async def test_gives_up_after_last_scheduled_retry():
    w = world(retry_schedule=[1])
    w.poster.answer(URL, 500)
    await w.service.attempt(await w.accepted())
    w.clock.advance(2)
    assert await w.service.claim_due() == 1
    await eventually(lambda: _true(w.service.in_flight == 0))
    assert [(r.attempt, r.status) for r in w.attempts.rows] == [(1, "pending"), (2, "failed")]
    assert len(w.poster.posts) == 2
    assert w.store.rows[w.attempts.rows[0].delivery_id].status == "failed"


async def test_by_default_a_failing_endpoint_is_retried_after_1_5_30_seconds_then_failed():
    w = world(retry_schedule=list(DEFAULT_RETRY_SCHEDULE))
    w.poster.answer(URL, 500)
    await w.service.attempt(await w.accepted())
    for attempt, step in enumerate((1, 5, 30), start=1):
        row = w.attempts.rows[-1]
        assert (row.attempt, row.status) == (attempt, "pending")
        assert row.next_attempt_at is not None
        waited = (row.next_attempt_at - w.clock.now).total_seconds()
        assert step * 0.8 <= waited <= step * 1.2  # ±20 % jitter
        w.clock.now = row.next_attempt_at - timedelta(milliseconds=10)
        assert await w.service.claim_due() == 0  # not before its time
        w.clock.now = row.next_attempt_at
        assert await w.service.claim_due() == 1
        await eventually(lambda: _true(w.service.in_flight == 0))
    assert [(r.attempt, r.status) for r in w.attempts.rows][-1] == (4, "failed")
    assert len(w.poster.posts) == 4
    assert w.store.rows[w.attempts.rows[0].delivery_id].status == "failed"


async def test_an_empty_schedule_never_retries():
    w = world()
    w.target(retry_schedule=())
    w.poster.answer(URL, 500)
    await w.service.attempt(await w.accepted())
    [row] = w.attempts.rows
    assert (row.status, row.next_attempt_at) == ("failed", None)


async def test_a_410_fails_the_delivery_disables_the_webhook_and_orders_the_registry_to():
    w = world()
    w.poster.answer(URL, 410)
    await w.service.attempt(await w.accepted())
    assert w.attempts.rows[0].status == "failed"
    target = await w.targets.get(w.webhook_id)
    assert target is not None and not target.enabled
    [order] = w.disabled
    assert order.webhook_id == str(w.webhook_id)
    assert order.organization_id == str(w.organization_id)


async def test_a_delivery_of_a_deleted_webhook_stops_without_a_request():
    # A disabled webhook's deliveries are held instead: tests/unit/test_delivery_pause.py.
    w = world()
    w.targets.targets.clear()
    job = await w.accepted()
    await w.service.attempt(job)
    assert w.poster.posts == [] and w.attempts.rows == []
    row = w.store.rows[job.id]
    assert (row.status, row.last_error) == ("failed", "webhook deleted")


async def test_an_unreadable_secret_fails_the_attempt_without_a_request_and_retries_it():
    w = world()
    w.target(secret=None, secret_error="sealed with key k2, which is not configured")
    await w.service.attempt(await w.accepted())
    assert w.poster.posts == []
    [row] = w.attempts.rows
    assert (row.status, row.error) == ("pending", "sealed with key k2, which is not configured")


async def test_a_delivery_whose_lease_ran_out_and_was_claimed_elsewhere_is_not_attempted():
    w = world()
    w.poster.answer(URL, 200)
    job = await w.accepted()
    w.clock.advance(11)  # our lease ran out; another replica claims it
    await w.store.claim_due(
        now=w.clock.now, lease_until=w.clock.now + timedelta(seconds=10), limit=1, skip_webhooks=[]
    )
    await w.service.attempt(job)
    assert w.poster.posts == [] and w.attempts.rows == []


async def test_a_lease_nearly_run_out_is_renewed_before_the_attempt():
    w = world()
    w.poster.answer(URL, 200)
    job = await w.accepted()
    w.clock.advance(8)  # 2 s left: less than the attempt's 2 s time limit and a margin
    await w.service.attempt(job)
    assert len(w.poster.posts) == 1
    assert w.attempts.rows[0].status == "success"


async def test_what_a_full_lane_cannot_take_goes_back_to_the_store_due_a_second_later():
    w = world(per_webhook_backlog=1)
    w.poster.gate = asyncio.Event()
    w.poster.answer(URL, 200)
    jobs = [await w.accepted(f"e{n}") for n in range(3)]
    await w.service.submit(jobs)
    assert w.service.in_flight == 1
    for job in jobs[1:]:
        row = w.store.rows[job.id]
        assert (row.lease_until, row.next_attempt_at) == (None, NOW + timedelta(seconds=1))
    w.poster.gate.set()
    await eventually(lambda: _true(w.service.in_flight == 0))
    assert len(w.attempts.rows) == 1


async def test_draining_releases_admitted_and_running_deliveries_due_now_unattempted():
    w = world(per_webhook_concurrency=1)
    w.poster.gate = asyncio.Event()  # never set: the first attempt hangs
    w.poster.answer(URL, 200)
    jobs = [await w.accepted(f"e{n}") for n in range(2)]
    await w.service.submit(jobs)
    await eventually(lambda: _true(w.poster.held == 1))  # the second waits for the lane
    assert await w.service.finish_in_flight(timeout_s=0.05) == 2
    released = await w.service.release_in_flight()
    assert sorted(released) == sorted(job.id for job in jobs)
    assert w.attempts.rows == [] and w.poster.posts == [] and w.poster.held == 0
    for job in jobs:
        row = w.store.rows[job.id]
        assert (row.status, row.lease_until, row.next_attempt_at) == ("pending", None, NOW)


async def test_an_attempt_that_crashes_records_nothing_and_frees_its_lane():
    w = world()

    async def broken(webhook_id: uuid.UUID) -> Target | None:
        raise RuntimeError("a bug")

    w.targets.get = broken  # type: ignore[method-assign]
    job = await w.accepted()
    await w.service.submit([job])
    await eventually(lambda: _true(w.service.in_flight == 0))
    assert w.attempts.rows == [] and w.service._lanes.admitted == 0
    assert w.store.rows[job.id].status == "pending"  # its lease brings it back


async def test_claiming_takes_due_deliveries_up_to_the_claim_batch():
    w = world(claim_batch=2)
    w.poster.answer(URL, 200)
    for n in range(3):
        await w.accepted(f"e{n}")
    w.clock.advance(11)  # every lease has run out
    assert await w.service.claim_due() == 2
    await eventually(lambda: _true(w.service.in_flight == 0))
    assert len(w.attempts.rows) == 2


async def _true(value: bool) -> bool:
    return value
