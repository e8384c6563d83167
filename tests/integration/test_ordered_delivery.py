"""Ordered delivery on the delivery service, a real broker, Postgres and HTTP endpoint: one
delivery at a time per (webhook, room), in the order of the events' positions, through
retries, Retry-After, a redelivery, a request that arrives late and two replicas."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from services.delivery.app import Delivery
from shared.dead_letters import H_ERROR
from shared.kafka import JSON_HEADERS, dumps
from shared.messages import DeliveryRequested, EventPosition, RedeliverRequested
from tests.integration.test_delivery_dead_letters import raw_request, read_dead_letters
from tests.integration.test_delivery_pause import seen_disabled, set_enabled
from tests.support.deliveries import create_webhook, delivery_request, running_delivery
from tests.support.polling import eventually
from tests.support.processes import delivery_process

pytestmark = pytest.mark.integration

# (room, sequence number, attempt number) -> (status, headers)
Answer = Callable[[str, int, int], tuple[int, dict[str, str]]]


def ok(room: str, seq: int, attempt: int) -> tuple[int, dict[str, str]]:
    return 200, {}


@dataclass
class RoomEndpoint:
    """A real HTTP endpoint that notes each request's room and sequence number as it comes,
    how many requests of one room were open at once, and answers as `answer` says."""

    answer: Answer = ok
    delay_s: float = 0.0
    # The (room, sequence number) a request's JSON body names.
    key: Callable[[dict], tuple[str, int]] = lambda body: (body["room"], body["seq"])
    arrivals: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    attempts: dict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(int))
    open: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    most_open: int = 0
    # Every (room, sequence number) answered with a 2xx at least once.
    succeeded_keys: set[tuple[str, int]] = field(default_factory=set)
    last_success_at: float = 0.0  # time.monotonic() of the last 2xx answered
    url: str = ""
    _runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        room, seq = self.key(body)
        self.arrivals[room].append(seq)
        self.attempts[room, seq] += 1
        self.open[room] += 1
        self.most_open = max(self.most_open, self.open[room])
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            status, headers = self.answer(room, seq, self.attempts[room, seq])
            if status < 300:
                self.succeeded_keys.add((room, seq))
                self.last_success_at = time.monotonic()
        finally:
            self.open[room] -= 1
        return web.Response(status=status, headers=headers, text="ok")

    def succeeded(self, room: str) -> list[int]:
        """The room's sequence numbers in the order of their last (successful) request."""
        last: dict[int, int] = {}
        for at, seq in enumerate(self.arrivals[room]):
            last[seq] = at
        return sorted(last, key=last.__getitem__)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/hook"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def endpoint() -> AsyncIterator[RoomEndpoint]:
    endpoint = RoomEndpoint()
    await endpoint.start()
    yield endpoint
    await endpoint.stop()


@pytest.fixture
async def delivery(postgres_settings, kafka_settings) -> AsyncIterator[Delivery]:
    async with running_delivery(postgres_settings, kafka_settings) as service:
        yield service


def ordered_request(
    webhook: dict, room: str | None, seq: int, *, offset: int | None = None, partition: int = 0
) -> DeliveryRequested:
    """What fanout sends for the `seq`-th event of `room` (None: an organization event), read
    at `offset` (by default `seq`) of the events topic."""
    event_id = f"{room}-{seq}-{uuid.uuid4().hex[:6]}"
    body = json.dumps({"id": event_id, "room": room or "", "seq": seq})
    plain = delivery_request(webhook, event_id, body=body)
    return plain.model_copy(
        update={
            "room_id": room,
            "position": EventPosition(
                partition=partition, offset=seq if offset is None else offset
            ),
            "ordering": "room",
        }
    )


async def send(producer, topics, *messages) -> None:
    for message in messages:
        await producer.send(
            topics.deliveries,
            dumps(message.model_dump(mode="json")),
            key=message.webhook_id.encode(),
            headers=JSON_HEADERS,
        )
    await producer.flush()


async def until_delivered(endpoint: RoomEndpoint, expected: dict[str, list[int]], timeout_s=30):
    async def done():
        return all(set(endpoint.succeeded(room)) >= set(seqs) for room, seqs in expected.items())

    await eventually(done, timeout_s=timeout_s)


async def arrived(endpoint: RoomEndpoint, room: str, seqs: list[int]) -> None:
    """Wait until exactly `seqs` have arrived for `room`, in that order."""

    async def now():
        return endpoint.arrivals[room] == seqs

    await eventually(now, timeout_s=10)


async def statuses_of(pool, messages) -> list[str]:
    rows = await pool.fetch(
        "SELECT id, status FROM delivery.deliveries WHERE id = ANY($1::uuid[])",
        [uuid.UUID(m.delivery_id) for m in messages],
    )
    by_id = {str(r["id"]): r["status"] for r in rows}
    return [by_id.get(m.delivery_id) for m in messages]


async def until_statuses(pool, messages, expected: list[str]) -> None:
    """Wait until the deliveries' statuses are `expected` (the recorder writes an attempt a
    moment after the endpoint has answered it); at the timeout, fail with the last ones."""

    async def reached():
        assert await statuses_of(pool, messages) == expected
        return True

    await eventually(reached, timeout_s=10)


async def test_a_failing_delivery_holds_its_rooms_later_ones_and_no_other_room(
    registry, producer, topics, pool, endpoint, delivery
):
    endpoint.answer = lambda room, seq, n: (
        (500, {}) if (room, seq) == ("a", 1) and n < 3 else (200, {})
    )
    webhook = await create_webhook(registry, endpoint.url, ordering="room", retrySchedule=[1, 1])
    assert webhook["ordering"] == "room"
    messages = [ordered_request(webhook, room, seq) for seq in (1, 2, 3) for room in "ab"]
    await send(producer, topics, *messages)
    await until_delivered(endpoint, {"a": [1, 2, 3], "b": [1, 2, 3]})

    assert endpoint.arrivals["a"] == [1, 1, 1, 2, 3]  # two failures, then in order
    assert endpoint.arrivals["b"] == [1, 2, 3]
    # Room b did not wait for room a's retries.
    assert endpoint.arrivals["b"] == endpoint.succeeded("b")
    assert endpoint.most_open == 1
    await until_statuses(pool, messages, ["success"] * 6)


async def test_a_delivery_failed_for_good_releases_the_next_one(
    registry, producer, topics, pool, endpoint, delivery
):
    endpoint.answer = lambda room, seq, n: (500, {}) if seq == 2 else (200, {})
    webhook = await create_webhook(registry, endpoint.url, ordering="room", retrySchedule=[1])
    messages = [ordered_request(webhook, "r", seq) for seq in (1, 2, 3)]
    await send(producer, topics, *messages)
    await until_delivered(endpoint, {"r": [1, 3]})
    assert endpoint.arrivals["r"] == [1, 2, 2, 3]
    await until_statuses(pool, messages, ["success", "failed", "success"])


async def test_retry_after_holds_the_room_for_as_long_as_it_asks(
    registry, producer, topics, endpoint, delivery
):
    endpoint.answer = lambda room, seq, n: (
        (429, {"Retry-After": "2"}) if seq == 1 and n == 1 else (200, {})
    )
    webhook = await create_webhook(registry, endpoint.url, ordering="room", retrySchedule=[1])
    await send(producer, topics, *(ordered_request(webhook, "r", seq) for seq in (1, 2)))
    await until_delivered(endpoint, {"r": [1, 2]})
    assert endpoint.arrivals["r"] == [1, 1, 2]


async def test_the_position_not_the_arrival_decides_which_waiting_delivery_goes_next(
    registry, producer, topics, endpoint, delivery
):
    endpoint.delay_s = 0.5  # the head is still being sent when the others arrive
    webhook = await create_webhook(registry, endpoint.url, ordering="room")
    await send(producer, topics, ordered_request(webhook, "r", 1))
    await arrived(endpoint, "r", [1])
    # Positions 5, 3, 4 arrive in that order (a re-read after a rebalance, say).
    for seq in (5, 3, 4):
        await send(producer, topics, ordered_request(webhook, "r", seq))
    await until_delivered(endpoint, {"r": [1, 3, 4, 5]})
    assert endpoint.arrivals["r"] == [1, 3, 4, 5]


async def test_organization_events_are_ordered_per_webhook(
    registry, producer, topics, endpoint, delivery
):
    endpoint.answer = lambda room, seq, n: (503, {}) if seq == 1 and n == 1 else (200, {})
    webhook = await create_webhook(registry, endpoint.url, ordering="room", retrySchedule=[1])
    await send(producer, topics, *(ordered_request(webhook, None, seq) for seq in (1, 2, 3)))
    await until_delivered(endpoint, {"": [1, 2, 3]})
    assert endpoint.arrivals[""] == [1, 1, 2, 3]


async def test_a_redelivery_is_sent_at_once_outside_the_order_and_holds_nothing(
    registry, producer, topics, pool, endpoint, delivery
):
    # The head fails and waits 60 s to retry: its room's later deliveries wait with it.
    endpoint.answer = lambda room, seq, n: (500, {}) if seq == 1 else (200, {})
    webhook = await create_webhook(registry, endpoint.url, ordering="room", retrySchedule=[60])
    first, second, third = (ordered_request(webhook, "r", seq) for seq in (1, 2, 3))
    await send(producer, topics, first, second, third)
    await arrived(endpoint, "r", [1])

    redeliver = RedeliverRequested(
        delivery_id=third.delivery_id,
        webhook_id=third.webhook_id,
        organization_id=third.organization_id,
        requested_at=third.created_at,
    )
    await send(producer, topics, redeliver)
    await arrived(endpoint, "r", [1, 3])

    async def third_done():
        statuses = await statuses_of(pool, [first, second, third])
        return statuses == ["pending", "pending", "success"]

    await eventually(third_done, timeout_s=10)
    # The second still waits for the first: the redelivery took the third out of the order.
    await asyncio.sleep(1.5)
    assert endpoint.arrivals["r"] == [1, 3]


async def test_unordered_deliveries_of_the_same_room_are_not_held(
    registry, producer, topics, endpoint, delivery
):
    endpoint.answer = lambda room, seq, n: (500, {}) if seq == 1 else (200, {})
    webhook = await create_webhook(registry, endpoint.url, retrySchedule=[60])
    assert webhook["ordering"] == "none"
    messages = [
        ordered_request(webhook, "r", seq).model_copy(update={"ordering": "none"})
        for seq in (1, 2, 3)
    ]
    await send(producer, topics, *messages)
    await until_delivered(endpoint, {"r": [2, 3]})


async def test_two_replicas_send_each_room_one_at_a_time_in_order(
    registry, producer, topics, pool, endpoint, postgres_settings, kafka_settings
):
    failures = {("r3", 2), ("r7", 1), ("r0", 5)}
    endpoint.answer = lambda room, seq, n: (
        (500, {}) if (room, seq) in failures and n == 1 else (200, {})
    )
    endpoint.delay_s = 0.02
    webhook = await create_webhook(registry, endpoint.url, ordering="room", retrySchedule=[1])
    rooms = [f"r{i}" for i in range(10)]
    async with (
        running_delivery(postgres_settings, kafka_settings),
        running_delivery(postgres_settings, kafka_settings),
    ):
        messages = [ordered_request(webhook, room, seq) for seq in range(8) for room in rooms]
        await send(producer, topics, *messages)
        await until_delivered(endpoint, {room: list(range(8)) for room in rooms}, timeout_s=60)
    for room in rooms:
        assert endpoint.succeeded(room) == list(range(8)), room
    assert endpoint.most_open == 1


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"ordering": "room"}, "position: required when ordering is room"),
        ({"ordering": "room", "position": {"partition": 0}}, "position.offset"),
        ({"ordering": "room", "position": {"partition": -1, "offset": 3}}, "position.partition"),
        ({"ordering": "room", "position": "3"}, "position"),
        ({"ordering": "sometimes", "position": {"partition": 0, "offset": 1}}, "ordering"),
    ],
)
async def test_an_ordered_request_without_a_good_position_goes_to_the_dead_letters(
    registry, producer, topics, kafka_settings, pool, delivery, fields, named
):
    webhook = await create_webhook(registry, "http://127.0.0.1:9/never", ordering="room")
    value = raw_request(webhook, "e1", room_id="r", **fields)
    await producer.send(topics.deliveries, dumps(value), key=webhook["id"].encode())
    await producer.flush()
    [dead] = await read_dead_letters(kafka_settings, topics.deliveries_dlq, at_least=1)
    reason = dict(dead.headers)[H_ERROR].decode()
    assert reason.startswith("invalid delivery request") and named in reason, reason
    assert await pool.fetchval("SELECT count(*) FROM delivery.deliveries") == 0


def in_runs(arrivals: list[int]) -> list[int]:
    """The arrivals with each run of one sequence number (an attempt and its retries, or a
    duplicate after a kill) counted once: the order the room saw its events in."""
    return [seq for i, seq in enumerate(arrivals) if i == 0 or arrivals[i - 1] != seq]


async def test_a_killed_delivery_process_keeps_every_room_in_order(
    registry, producer, topics, pool, endpoint, database_url, broker, kafka_settings, tmp_path
):
    endpoint.delay_s = 0.05
    endpoint.answer = lambda room, seq, n: (500, {}) if seq % 7 == 3 and n == 1 else (200, {})
    webhook = await create_webhook(registry, endpoint.url, ordering="room", retrySchedule=[1])
    process = delivery_process(
        tmp_path,
        database_url=database_url,
        bootstrap=broker,
        namespace=kafka_settings.topic_namespace,
        ROOMHOOKS_DELIVERY_TIMEOUT_S="2",
        ROOMHOOKS_DELIVERY_LEASE_S="4",
    )
    rooms, per_room = [f"k{i}" for i in range(5)], 30
    await send(
        producer,
        topics,
        *(ordered_request(webhook, room, seq) for seq in range(per_room) for room in rooms),
    )
    try:
        process.start()

        async def some_arrived():
            return sum(map(len, endpoint.arrivals.values())) >= 40

        await eventually(some_arrived, timeout_s=30)
        process.kill()
        assert sum(map(len, endpoint.arrivals.values())) < len(rooms) * per_room
        process.start()
        await until_delivered(endpoint, {room: list(range(per_room)) for room in rooms}, 90)

        async def all_recorded():
            success = "SELECT count(*) FROM delivery.deliveries WHERE status = 'success'"
            return await pool.fetchval(success) == len(rooms) * per_room

        await eventually(all_recorded, timeout_s=30)
    finally:
        process.stop()
    for room in rooms:
        assert in_runs(endpoint.arrivals[room]) == list(range(per_room)), room
    assert endpoint.most_open == 1


async def test_a_test_ping_is_sent_at_once_while_a_room_is_held(
    registry, producer, topics, endpoint, delivery
):
    endpoint.key = lambda body: (
        ("ping", 0) if body.get("event") == "webhook.test" else (body["room"], body["seq"])
    )
    endpoint.answer = lambda room, seq, n: (500, {}) if room == "r" and seq == 1 else (200, {})
    webhook = await create_webhook(registry, endpoint.url, ordering="room", retrySchedule=[60])
    await send(producer, topics, *(ordered_request(webhook, "r", seq) for seq in (1, 2)))
    await arrived(endpoint, "r", [1])

    url = registry.webhooks_url(registry.alice, webhook["id"]) + "/test"
    async with registry.http.post(url, headers=registry.alice.auth()) as answer:
        assert answer.status == 202, await answer.text()
    while await registry.relay.publish_pending():
        pass
    await arrived(endpoint, "ping", [0])
    assert endpoint.arrivals["r"] == [1]  # the room still waits for its head's retry


async def test_a_disabled_webhook_holds_its_rooms_and_enabling_it_resumes_them_in_order(
    registry, producer, topics, pool, endpoint, postgres_settings, kafka_settings
):
    endpoint.answer = lambda room, seq, n: (503, {}) if seq == 1 and n == 1 else (200, {})
    webhook = await create_webhook(registry, endpoint.url, ordering="room", retrySchedule=[2])
    settings = {"upkeep_interval_s": 0.2}
    async with running_delivery(postgres_settings, kafka_settings, **settings) as delivery:
        messages = [ordered_request(webhook, room, seq) for seq in (1, 2, 3) for room in "ab"]
        await send(producer, topics, *messages)
        await arrived(endpoint, "a", [1])  # the heads' first attempts fail
        await arrived(endpoint, "b", [1])
        await set_enabled(registry, webhook, False)
        await seen_disabled(delivery, webhook)

        async def all_pending_and_none_due():
            found = await pool.fetch(
                "SELECT status, next_attempt_at FROM delivery.deliveries"
                " WHERE id = ANY($1::uuid[])",
                [uuid.UUID(m.delivery_id) for m in messages],
            )
            return len(found) == 6 and all(
                r["status"] == "pending" and r["next_attempt_at"] is None for r in found
            )

        await eventually(all_pending_and_none_due, timeout_s=20)
        assert endpoint.arrivals == {"a": [1], "b": [1]}  # nothing sent while disabled

        await set_enabled(registry, webhook, True)
        await until_delivered(endpoint, {"a": [1, 2, 3], "b": [1, 2, 3]})
    assert endpoint.arrivals == {"a": [1, 1, 2, 3], "b": [1, 1, 2, 3]}
    assert endpoint.most_open == 1


async def test_a_deleted_webhooks_waiting_deliveries_end_failed_one_after_another(
    registry, producer, topics, pool, endpoint, delivery
):
    endpoint.answer = lambda room, seq, n: (500, {})
    webhook = await create_webhook(registry, endpoint.url, ordering="room", retrySchedule=[2])
    messages = [ordered_request(webhook, "r", seq) for seq in (1, 2, 3)]
    await send(producer, topics, *messages)
    await arrived(endpoint, "r", [1])
    url = registry.webhooks_url(registry.alice, webhook["id"])
    async with registry.http.delete(url, headers=registry.alice.auth()) as answer:
        assert answer.status in (200, 204), await answer.text()
    await registry.relay.publish_pending()

    async def all_failed():
        return await statuses_of(pool, messages) == ["failed"] * 3

    await eventually(all_failed, timeout_s=30)
    assert endpoint.arrivals["r"] == [1]  # nothing more was sent to a deleted webhook
    errors = await pool.fetch(
        "SELECT last_error FROM delivery.deliveries WHERE id = ANY($1::uuid[])",
        [uuid.UUID(m.delivery_id) for m in messages[1:]],
    )
    assert {r["last_error"] for r in errors} == {"webhook deleted"}
    assert await pool.fetchval("SELECT count(*) FROM delivery.order_queue") == 0
    assert await pool.fetchval("SELECT count(*) FROM delivery.order_heads") == 0
