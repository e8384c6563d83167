"""Recovery after an outage, on the real broker, Postgres and a local receiver: POST
.../recover sends every failed delivery of the window again (new attempts, the same ids and
`webhook-id`) as a job whose progress GET .../jobs/{id} shows, and which goes on after the
delivery service restarts; overlapping windows send no delivery twice at once."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from shared.events import format_timestamp
from tests.integration.test_delivery_pause import seen_disabled, set_enabled
from tests.support.deliveries import create_webhook, request_deliveries, running_delivery
from tests.support.polling import eventually
from tests.support.receiver import Script

pytestmark = pytest.mark.integration

FAST = {"upkeep_interval_s": 0.2, "upkeep_batch": 4}


async def failed_after_outage(registry, pool, producer, topics, receiver, path, count):
    """A webhook (one attempt per delivery) whose receiver was down for `count` deliveries:
    all failed. Returns the webhook and the delivery ids, in order of creation."""
    webhook = await create_webhook(
        registry, receiver.script(path, Script(statuses=[503])), retrySchedule=[]
    )
    ids = await request_deliveries(
        producer, topics.deliveries, webhook, [f"e{n}" for n in range(count)]
    )

    async def all_failed():
        found = await pool.fetch(
            "SELECT status FROM delivery.deliveries WHERE webhook_id = $1",
            uuid.UUID(webhook["id"]),
        )
        return len(found) == count and {r["status"] for r in found} == {"failed"}

    await eventually(all_failed, timeout_s=30)
    receiver.received[path].clear()
    return webhook, ids


async def order_recovery(registry, webhook: dict, since: datetime, until: datetime | None = None):
    body = {"since": format_timestamp(since)}
    if until is not None:
        body["until"] = format_timestamp(until)
    url = registry.webhooks_url(registry.alice, webhook["id"]) + "/recover"
    resp = await registry.http.post(url, json=body, headers=registry.alice.auth())
    assert resp.status == 202, await resp.text()
    await registry.relay.publish_pending()
    return (await resp.json())["data"]["job"]


async def job_state(registry, job_id: str) -> dict:
    url = f"{registry.url}/v1/accounts/{registry.alice.id}/jobs/{job_id}"
    resp = await registry.http.get(url, headers=registry.alice.auth())
    assert resp.status == 200, await resp.text()
    return (await resp.json())["data"]["job"]


async def statuses(pool, ids: list[str], *, held: bool = False) -> Counter:
    """(status, attempts) of each; with `held`, only those held (no next attempt)."""
    found = await pool.fetch(
        "SELECT status, attempts FROM delivery.deliveries WHERE id = ANY($1::uuid[])"
        " AND (NOT $2 OR next_attempt_at IS NULL)",
        [uuid.UUID(i) for i in ids],
        held,
    )
    return Counter((r["status"], r["attempts"]) for r in found)


async def test_a_recovery_after_an_outage_goes_on_across_a_delivery_restart(
    registry, pool, producer, topics, receiver, postgres_settings, kafka_settings
):
    count = 24
    started = datetime.now(UTC) - timedelta(seconds=1)
    async with running_delivery(postgres_settings, kafka_settings, **FAST):
        webhook, ids = await failed_after_outage(
            registry, pool, producer, topics, receiver, "/outage", count
        )
    # The receiver is back, slowly: the job is still running when the service stops.
    receiver.script("/outage", Script(statuses=[200], delay_s=0.1))
    job = await order_recovery(registry, webhook, started)
    assert (job["status"], job["total"], job["done"]) == ("queued", count, 0)

    slow = {**FAST, "per_webhook_concurrency": 1}
    async with running_delivery(postgres_settings, kafka_settings, **slow):

        async def under_way():
            state = await job_state(registry, job["id"])
            return state if state["status"] == "running" and state["done"] >= 4 else None

        await eventually(under_way, timeout_s=30)
    halted = await job_state(registry, job["id"])
    assert halted["status"] == "running" and 4 <= halted["done"] < count  # kept in Postgres

    async with running_delivery(postgres_settings, kafka_settings, **FAST):

        async def finished():
            state = await job_state(registry, job["id"])
            return state if state["status"] == "done" else None

        state = await eventually(finished, timeout_s=60)
    assert (state["total"], state["done"]) == (count, count)
    assert await statuses(pool, ids) == Counter({("success", 2): count})
    sent = [r.headers for r in receiver.received["/outage"]]
    assert {h["webhook-id"] for h in sent} == set(ids)  # the same ids, each sent again
    assert {h["X-Webhook-Attempt"] for h in sent} == {"2"}


async def test_overlapping_recoveries_send_each_delivery_once(
    registry, pool, producer, topics, receiver, postgres_settings, kafka_settings
):
    started = datetime.now(UTC) - timedelta(seconds=1)
    async with running_delivery(postgres_settings, kafka_settings, **FAST):
        webhook, ids = await failed_after_outage(
            registry, pool, producer, topics, receiver, "/twice", 10
        )
        receiver.script("/twice", Script(statuses=[200]))
        now = datetime.now(UTC)
        first = await order_recovery(registry, webhook, started, now)
        second = await order_recovery(registry, webhook, started + timedelta(milliseconds=1))

        async def both_done():
            states = [await job_state(registry, j["id"]) for j in (first, second)]
            return states if {s["status"] for s in states} == {"done"} else None

        states = await eventually(both_done, timeout_s=60)
    assert sum(s["done"] for s in states) == 10
    assert await statuses(pool, ids) == Counter({("success", 2): 10})
    assert Counter(r.headers["webhook-id"] for r in receiver.received["/twice"]) == Counter(
        {i: 1 for i in ids}
    )


async def test_a_recovery_of_a_disabled_webhook_waits_for_it_to_be_enabled(
    registry, pool, producer, topics, receiver, postgres_settings, kafka_settings
):
    started = datetime.now(UTC) - timedelta(seconds=1)
    async with running_delivery(postgres_settings, kafka_settings, **FAST) as delivery:
        webhook, ids = await failed_after_outage(
            registry, pool, producer, topics, receiver, "/off", 3
        )
        receiver.script("/off", Script(statuses=[200]))
        await set_enabled(registry, webhook, False)
        await seen_disabled(delivery, webhook)
        job = await order_recovery(registry, webhook, started)

        async def held():
            return await statuses(pool, ids, held=True) == Counter({("pending", 1): 3})

        await eventually(held, timeout_s=20)
        assert receiver.received["/off"] == []
        assert (await job_state(registry, job["id"]))["status"] == "running"
        await set_enabled(registry, webhook, True)

        async def finished():
            return (await job_state(registry, job["id"]))["status"] == "done"

        await eventually(finished, timeout_s=30)
    assert await statuses(pool, ids) == Counter({("success", 2): 3})


async def test_a_recovery_in_progress_does_not_hold_back_another_webhooks_deliveries(
    registry, pool, producer, topics, receiver, postgres_settings, kafka_settings
):
    started = datetime.now(UTC) - timedelta(seconds=1)
    slow = {**FAST, "per_webhook_concurrency": 1}
    async with running_delivery(postgres_settings, kafka_settings, **slow):
        webhook, _ = await failed_after_outage(
            registry, pool, producer, topics, receiver, "/backlog", 60
        )
        receiver.script("/backlog", Script(statuses=[200], delay_s=0.2))  # 12 s of work
        job = await order_recovery(registry, webhook, started)

        async def under_way():
            return (await job_state(registry, job["id"]))["done"] >= 1

        await eventually(under_way, timeout_s=30)
        other = await create_webhook(registry, receiver.script("/other", Script()))
        [fresh] = await request_deliveries(producer, topics.deliveries, other, ["new"])

        async def delivered():
            return await statuses(pool, [fresh]) == Counter({("success", 1): 1})

        await eventually(delivered, timeout_s=30)
        state = await job_state(registry, job["id"])
        assert state["status"] == "running" and state["done"] < 60  # still recovering
