"""Ordered delivery through the whole platform: the `ordering` field over the registry's API
(bad values refused naming it), fanout's requests carrying room and position, and 2,000
events over 20 rooms to an ordered webhook whose endpoint fails a fifth of first attempts,
beside an unordered webhook on the same events."""

from __future__ import annotations

import random
import time
from collections import defaultdict

import pytest

from shared.kafka import JSON_HEADERS, dumps
from tests.integration import test_pipeline
from tests.integration.test_ordered_delivery import RoomEndpoint
from tests.integration.test_pipeline import collab_event
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

platform = test_pipeline.platform  # the whole platform in one process


def hook(**fields) -> dict:
    return {"url": "https://hooks.example.com/in", "events": ["participant.joined"], **fields}


async def call(registry, method: str, url: str, **kw) -> tuple[int, dict]:
    async with registry.http.request(method, url, headers=registry.alice.auth(), **kw) as answer:
        return answer.status, await answer.json()


async def test_ordering_defaults_to_none_and_is_kept_through_put_and_patch(registry):
    status, body = await call(registry, "POST", registry.webhooks_url(registry.alice), json=hook())
    assert status == 201 and body["data"]["webhook"]["ordering"] == "none"
    url = registry.webhooks_url(registry.alice, body["data"]["webhook"]["id"])
    status, body = await call(registry, "PATCH", url, json={"ordering": "room"})
    assert status == 200 and body["data"]["webhook"]["ordering"] == "room"
    status, body = await call(registry, "PATCH", url, json={"name": "kept"})
    assert status == 200 and body["data"]["webhook"]["ordering"] == "room"
    status, body = await call(registry, "GET", url)
    assert body["data"]["webhook"]["ordering"] == "room"
    status, body = await call(registry, "PUT", url, json=hook(ordering="room"))
    assert status == 200 and body["data"]["webhook"]["ordering"] == "room"
    status, body = await call(registry, "PUT", url, json=hook())  # PUT replaces every field
    assert status == 200 and body["data"]["webhook"]["ordering"] == "none"


@pytest.mark.parametrize("bad", ["ROOM", "sometimes", "", 1, True, ["room"], {"room": 1}])
async def test_a_bad_ordering_is_refused_naming_the_field(registry, bad):
    status, body = await call(registry, "POST", registry.webhooks_url(registry.alice), json=hook())
    url = registry.webhooks_url(registry.alice, body["data"]["webhook"]["id"])
    for method, target, payload in (
        ("POST", registry.webhooks_url(registry.alice), hook(ordering=bad)),
        ("PUT", url, hook(ordering=bad)),
        ("PATCH", url, {"ordering": bad}),
    ):
        status, answer = await call(registry, method, target, json=payload)
        assert status == 400, (method, answer)
        assert [d["field"] for d in answer["error"]["details"]] == ["ordering"], (method, answer)


async def test_a_null_ordering_in_a_patch_is_refused_naming_the_field(registry):
    status, body = await call(registry, "POST", registry.webhooks_url(registry.alice), json=hook())
    url = registry.webhooks_url(registry.alice, body["data"]["webhook"]["id"])
    status, answer = await call(registry, "PATCH", url, json={"ordering": None})
    assert status == 400
    assert [d["field"] for d in answer["error"]["details"]] == ["ordering"]


ROOMS, PER_ROOM = 20, 100


def by_event_id(body: dict) -> tuple[str, int]:
    room, _, seq = body["id"].rpartition(":")
    return room, int(seq)


async def test_two_thousand_events_over_twenty_rooms_arrive_in_publish_order_per_room(
    platform, registry, pool
):
    alice = registry.alice
    chance = random.Random(20)
    fails: set[tuple[str, int]] = set()

    def flaky(room: str, seq: int, attempt: int) -> tuple[int, dict[str, str]]:
        if attempt == 1 and chance.random() < 0.2:
            fails.add((room, seq))
            return 500, {}
        return 200, {}

    ordered = RoomEndpoint(answer=flaky, key=by_event_id)
    unordered = RoomEndpoint(key=by_event_id)
    for endpoint in (ordered, unordered):
        await endpoint.start()
    try:
        events = ["participant.joined"]
        common = {"events": events, "retrySchedule": [1, 1, 1]}
        # Both endpoints through the registry, as a customer would make them.
        for endpoint, ordering in ((ordered, "room"), (unordered, "none")):
            r = platform.registry
            body = {"url": endpoint.url, "ordering": ordering, **common}
            resp = await r.http.post(r.webhooks_url(alice), json=body, headers=alice.auth())
            assert resp.status == 201, await resp.text()
            webhook_id = (await resp.json())["data"]["webhook"]["id"]

            async def indexed(webhook_id=webhook_id):
                return platform.fanout.index.get(webhook_id) is not None

            await eventually(indexed, timeout_s=15)

        rooms = [f"room-{i:02d}" for i in range(ROOMS)]
        started = time.monotonic()
        for seq in range(PER_ROOM):
            for room in rooms:
                event = collab_event("participant.joined", alice.id, room={"id": room})
                event["id"] = f"{room}:{seq}"
                await platform.producer.send(
                    platform.topics.events,
                    dumps(event),
                    key=room.encode(),
                    headers=JSON_HEADERS,
                )
        await platform.producer.flush()

        for endpoint, timeout_s in ((unordered, 120), (ordered, 240)):

            async def all_succeeded(endpoint=endpoint):
                return len(endpoint.succeeded_keys) == ROOMS * PER_ROOM

            await eventually(all_succeeded, timeout_s=timeout_s)
    finally:
        for endpoint in (ordered, unordered):
            await endpoint.stop()

    expected = list(range(PER_ROOM))
    for room in rooms:
        assert ordered.succeeded(room) == expected, room
        # Each event's attempts came together: a failed one was retried before the next.
        runs = [
            seq
            for i, seq in enumerate(ordered.arrivals[room])
            if i == 0 or ordered.arrivals[room][i - 1] != seq
        ]
        assert runs == expected, room
        assert sorted(set(unordered.arrivals[room])) == expected
    assert ordered.most_open == 1
    assert len(fails) > ROOMS * PER_ROOM // 10  # about a fifth of first attempts failed
    # The unordered webhook was never held behind the ordered one's retries.
    assert unordered.last_success_at < ordered.last_success_at
    per_s = defaultdict(float)
    for name, endpoint in (("ordered", ordered), ("unordered", unordered)):
        per_s[name] = ROOMS * PER_ROOM / (endpoint.last_success_at - started)
    print(f"\ndeliveries/s: ordered {per_s['ordered']:.0f}, unordered {per_s['unordered']:.0f}")

    # An endpoint's answer reaches it before delivery records the attempt: the last few
    # outcomes may still be on their way to Postgres.
    async def all_recorded():
        statuses = await pool.fetch(
            "SELECT status, count(*) FROM delivery.deliveries GROUP BY status"
        )
        assert {r["status"]: r["count"] for r in statuses} == {"success": 2 * ROOMS * PER_ROOM}
        # Nothing waits, and no room keeps a head once it has nothing in flight.
        assert await pool.fetchval("SELECT count(*) FROM delivery.order_queue") == 0
        assert await pool.fetchval("SELECT count(*) FROM delivery.order_heads") == 0
        return True

    await eventually(all_recorded, timeout_s=10)
